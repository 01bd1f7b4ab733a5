package ocitest

import (
	"io"
	"log"
	"strconv"
)

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func itoa(n int) string { return strconv.Itoa(n) }
