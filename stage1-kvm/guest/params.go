package guest

import "strings"

// moduleParams returns the parameters the kernel command line gives
// module mod ("mod.param=value" words, dashes and underscores alike in
// the module's name, as modprobe reads them), joined for finit_module.
func moduleParams(cmdline []string, mod string) string {
	want := strings.ReplaceAll(mod, "-", "_") + "."
	var params []string
	for _, w := range cmdline {
		name, rest, ok := strings.Cut(w, ".")
		if !ok || strings.ContainsRune(name, '=') || strings.ReplaceAll(name, "-", "_")+"." != want || rest == "" {
			continue
		}
		params = append(params, rest)
	}
	return strings.Join(params, " ")
}
