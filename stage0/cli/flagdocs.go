package cli

// RunFlagUsage returns the flags of run and prepare, which parse their
// own arguments (runFlagSpecs) and so declare no urfave/cli flags, each
// with its usage. nscn-gendoc completes them from it.
func RunFlagUsage() map[string]string {
	out := make(map[string]string, len(runFlagSpecs))
	for name, spec := range runFlagSpecs {
		out[name] = spec.usage
	}
	return out
}
