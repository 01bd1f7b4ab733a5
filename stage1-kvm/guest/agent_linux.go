package guest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Requests the host writes on the control port, one per line.
const (
	// RequestHalt asks the pod's systemd to halt the pod (the stop
	// entrypoint): the apps get SIGTERM and their statuses are recorded.
	RequestHalt = "halt"
)

// sigHalt is SIGRTMIN+3, systemd's halt.target signal.
const sigHalt = unix.Signal(37)

// Agent serves the control port for as long as the guest runs. log gets
// one line per request.
//
// A read of a virtio-serial port returns end of file whenever no host
// program is connected to it (qemu's socket chardev between two
// requests), and poll reports a hang-up then, so the agent reads again
// after a pause instead.
func Agent(log io.Writer) error {
	f, err := os.OpenFile(filepath.Join(PortDir, ControlPort), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	var line []byte
	buf := make([]byte, 512)
	for {
		n, err := f.Read(buf)
		if n == 0 || errors.Is(err, io.EOF) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		line = append(line, buf[:n]...)
		for {
			i := bytes.IndexByte(line, '\n')
			if i < 0 {
				break
			}
			serve(log, strings.TrimSpace(string(line[:i])))
			line = line[i+1:]
		}
		if len(line) > 4096 {
			line = line[:0]
		}
	}
}

func serve(log io.Writer, req string) {
	switch req {
	case RequestHalt:
		_, _ = fmt.Fprintln(log, "nscn-agent: halt requested")
		if err := unix.Kill(1, sigHalt); err != nil {
			_, _ = fmt.Fprintln(log, "nscn-agent: signal systemd:", err)
		}
	case "":
	default:
		_, _ = fmt.Fprintf(log, "nscn-agent: unknown request %q\n", req)
	}
}
