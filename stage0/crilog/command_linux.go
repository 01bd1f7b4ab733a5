package crilog

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Command is the argv[1] that makes nscn-grpc a log writer (a re-exec of
// the server's own binary, see Start).
const Command = "cri-log-writer"

// readyFD is the writer's fd that carries its start-up verdict: "ok\n"
// once the FIFOs, the file and the control socket are open, or the
// error, then closed.
const readyFD = 3

// Argv is the command line of a log writer for cfg (after the binary).
func (cfg Config) Argv() []string {
	argv := []string{
		Command,
		"--pod-dir=" + cfg.PodDir, "--stdout=" + cfg.StdoutFIFO, "--stderr=" + cfg.StderrFIFO,
		"--stdin=" + cfg.StdinFIFO, "--log-dir=" + cfg.LogDir, "--log-path=" + cfg.LogPath,
		"--control=" + cfg.Control,
	}
	if cfg.StdinOnce {
		argv = append(argv, "--stdin-once")
	}
	if cfg.ResizeFIFO != "" {
		argv = append(argv, "--resize="+cfg.ResizeFIFO)
	}
	return argv
}

// parseArgv is Argv's inverse: args are what follows Command.
func parseArgv(args []string) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet(Command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.PodDir, "pod-dir", "", "")
	fs.StringVar(&cfg.StdoutFIFO, "stdout", "", "")
	fs.StringVar(&cfg.StderrFIFO, "stderr", "", "")
	fs.StringVar(&cfg.StdinFIFO, "stdin", "", "")
	fs.StringVar(&cfg.LogDir, "log-dir", "", "")
	fs.StringVar(&cfg.LogPath, "log-path", "", "")
	fs.StringVar(&cfg.Control, "control", "", "")
	fs.BoolVar(&cfg.StdinOnce, "stdin-once", false, "")
	fs.StringVar(&cfg.ResizeFIFO, "resize", "", "")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() != 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, v := range []struct{ name, val string }{
		{"pod-dir", cfg.PodDir},
		{"stdout", cfg.StdoutFIFO},
		{"stderr", cfg.StderrFIFO},
		{"control", cfg.Control},
	} {
		if v.val == "" {
			return cfg, fmt.Errorf("--%s is required", v.name)
		}
	}
	if cfg.LogPath != "" && cfg.LogDir == "" {
		return cfg, errors.New("--log-path needs --log-dir")
	}
	if cfg.StdinOnce && cfg.StdinFIFO == "" {
		return cfg, errors.New("--stdin-once needs --stdin")
	}
	if cfg.LogPath == "" && cfg.StdinFIFO == "" && cfg.ResizeFIFO == "" {
		return cfg, errors.New("--log-path, --stdin or --resize is required")
	}
	if !filepath.IsAbs(cfg.PodDir) || !filepath.IsAbs(cfg.Control) || (cfg.LogDir != "" && !filepath.IsAbs(cfg.LogDir)) {
		return cfg, errors.New("--pod-dir, --log-dir and --control must be absolute")
	}
	return cfg, nil
}

// Main is the log writer process: args follow Command. It reports its
// start on fd 3 and returns once the output is copied.
func Main(ctx context.Context, args []string, log *slog.Logger) error {
	ready := os.NewFile(readyFD, "ready")
	cfg, err := parseArgv(args)
	if err == nil {
		cfg.Log = log
		var w *Writer
		if w, err = Open(cfg); err == nil {
			_, _ = io.WriteString(ready, "ok\n")
			_ = ready.Close()
			return w.Run(ctx)
		}
	}
	if ready != nil {
		_, _ = io.WriteString(ready, err.Error()+"\n")
		_ = ready.Close()
	}
	return err
}

// Start starts a log writer for cfg: the binary exe (nscn-grpc) again,
// in a session of its own so that it outlives the server, and returns
// once it has opened what it copies, or failed to. stderr receives its
// messages.
func Start(ctx context.Context, exe string, cfg Config, stderr io.Writer) (*os.Process, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Close() }()
	cmd := exec.Command(exe, cfg.Argv()...) //nolint:gosec // G204: the server's own binary, with paths it chose
	cmd.Stderr = stderr
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	_ = w.Close()
	if err != nil {
		return nil, fmt.Errorf("start log writer: %w", err)
	}
	// Reap it whenever it ends (while the server runs; init otherwise).
	go func() { _ = cmd.Wait() }()
	verdict := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, 4096))
		verdict <- strings.TrimSpace(string(b))
	}()
	select {
	case v := <-verdict:
		if v == "ok" {
			return cmd.Process, nil
		}
		_ = cmd.Process.Kill()
		if v == "" {
			v = "exited without a word"
		}
		return nil, fmt.Errorf("log writer: %s", v)
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
	}
	_ = cmd.Process.Kill()
	return nil, errors.New("log writer: no answer")
}
