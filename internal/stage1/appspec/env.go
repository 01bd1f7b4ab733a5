package appspec

import (
	"github.com/appc/spec/schema/types"
)

// EnvOptions are the inputs of Environ that do not come from the manifest.
type EnvOptions struct {
	// Term is the caller's TERM. It is passed on when the app is
	// interactive (or entered) and its environment sets no TERM.
	Term string
	// MetadataURL, if set, is the app's AC_METADATA_URL: the stage1 runs
	// the pod with a metadata service. It replaces any value the app's
	// environment sets.
	MetadataURL string
}

// Environment variable names the executor owns (ace.md).
const (
	envPath      = "PATH"
	envAppName   = "AC_APP_NAME"
	envContainer = "container"
	envTerm      = "TERM"
	envMetadata  = "AC_METADATA_URL"
)

// Environ computes the environment of the app's processes (main process,
// event handlers and entered commands), as ace.md "Execution Environment"
// asks:
//
//   - PATH: the app's own if its environment sets one, DefaultPath otherwise;
//   - the app's environment, in manifest order (stage0 already merged the
//     image's variables with the user's);
//   - TERM from opts, if set and the app sets none;
//   - AC_APP_NAME: the app's name, and container: ContainerEnv. These two
//     belong to the executor: an app's own values for them are dropped.
//   - AC_METADATA_URL from opts, if set, replacing the app's own. Fly never
//     sets it: it runs no metadata service.
func Environ(appName string, app *types.App, opts EnvOptions) []string {
	env := make([]string, 0, len(app.Environment)+4)
	if _, ok := app.Environment.Get(envPath); !ok {
		env = append(env, envPath+"="+DefaultPath)
	}
	for _, v := range app.Environment {
		if v.Name == envAppName || v.Name == envContainer || (v.Name == envMetadata && opts.MetadataURL != "") {
			continue
		}
		env = append(env, v.Name+"="+v.Value)
	}
	if _, ok := app.Environment.Get(envTerm); !ok && opts.Term != "" {
		env = append(env, envTerm+"="+opts.Term)
	}
	env = append(env, envAppName+"="+appName, envContainer+"="+ContainerEnv)
	if opts.MetadataURL != "" {
		env = append(env, envMetadata+"="+opts.MetadataURL)
	}
	return env
}

// Getenv returns the value of name in an environment list built by
// Environ, or "".
func Getenv(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if len(env[i]) > len(name) && env[i][len(name)] == '=' && env[i][:len(name)] == name {
			return env[i][len(name)+1:]
		}
	}
	return ""
}
