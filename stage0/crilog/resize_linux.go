package crilog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Resize sets the size of the terminal of the app whose writer listens
// at path (the CRI's resize of an attach or an exec with tty).
func Resize(ctx context.Context, path string, rows, cols uint16) error {
	return Request(ctx, path, fmt.Sprintf("%s %d %d", ReqResize, rows, cols))
}

// parseResize reads a resize request line: "resize ROWS COLS", each a
// decimal number from 1 to 65535.
func parseResize(line string) (rows, cols uint16, err error) {
	f := strings.Split(line, " ")
	if len(f) != 3 || f[0] != ReqResize {
		return 0, 0, errors.New("not a resize request")
	}
	var n [2]uint16
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 16)
		if err != nil || v == 0 {
			return 0, 0, fmt.Errorf("resize: bad size %q", s)
		}
		n[i] = uint16(v)
	}
	return n[0], n[1], nil
}

// setSize writes the frame of a terminal of rows by cols characters to
// the app's resize FIFO, and returns the request's answer.
func (w *Writer) setSize(rows, cols uint16) string {
	if w.resize == nil {
		return "the app has no terminal"
	}
	b := stage1abi.EncodeWinsize(rows, cols)
	if _, err := w.resize.Write(b[:]); err != nil {
		if errors.Is(err, unix.EAGAIN) {
			// The app's helper does not read: the size is dropped.
			return answerOK
		}
		return "resize: " + err.Error()
	}
	return answerOK
}
