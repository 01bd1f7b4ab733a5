package mdsclient

import (
	"errors"
	"testing"
)

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		status int
		body   string
		bad    bool
	}{
		{name: "no content", raw: "HTTP/1.0 204 No Content\r\nDate: x\r\n\r\n", status: 204},
		{name: "created, length", raw: "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n{\"metadataPort\":18}", status: 201, body: `{"metadataPort":18}`},
		{name: "body to the end", raw: "HTTP/1.0 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nregistration is for root only\n", status: 403, body: "registration is for root only\n"},
		{name: "body longer than its length", raw: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nabcd", status: 200, body: "ab"},
		{name: "no reason", raw: "HTTP/1.0 404\r\n\r\n", status: 404},
		{name: "identity encoding", raw: "HTTP/1.0 200 OK\r\nTransfer-Encoding: identity\r\n\r\nx", status: 200, body: "x"},
		{name: "empty", raw: "", bad: true},
		{name: "no end of headers", raw: "HTTP/1.0 204 No Content\r\n", bad: true},
		{name: "HTTP/2", raw: "HTTP/2 204\r\n\r\n", bad: true},
		{name: "not HTTP", raw: "SSH-2.0-OpenSSH\r\n\r\n", bad: true},
		{name: "status not a number", raw: "HTTP/1.0 2x4 No\r\n\r\n", bad: true},
		{name: "status too short", raw: "HTTP/1.0 20 No\r\n\r\n", bad: true},
		{name: "status below 100", raw: "HTTP/1.0 099 No\r\n\r\n", bad: true},
		{name: "header without colon", raw: "HTTP/1.0 200 OK\r\nbroken\r\n\r\n", bad: true},
		{name: "negative length", raw: "HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n", bad: true},
		{name: "two lengths", raw: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", bad: true},
		{name: "short body", raw: "HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nab", bad: true},
		{name: "chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseResponse([]byte(tt.raw))
			if tt.bad {
				if !errors.Is(err, errMalformed) {
					t.Fatalf("parseResponse = %+v, %v; want a malformed answer", r, err)
				}
				return
			}
			if err != nil || r.status != tt.status || string(r.body) != tt.body {
				t.Fatalf("parseResponse = %d %q, %v; want %d %q", r.status, r.body, err, tt.status, tt.body)
			}
		})
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.0 204 No Content\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"))
	f.Add([]byte("HTTP/1.0 409 Conflict\r\n\r\npod exists\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := parseResponse(raw)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v is not errMalformed", err)
			}
			return
		}
		if r.status < 100 || r.status > 999 {
			t.Fatalf("status %d accepted", r.status)
		}
		if len(r.body) > len(raw) {
			t.Fatalf("body of %d bytes from %d", len(r.body), len(raw))
		}
	})
}

func TestStatusClasses(t *testing.T) {
	for _, s := range statuses {
		if got := StatusOf(s.class); got != s.status {
			t.Errorf("StatusOf(%v) = %d, want %d", s.class, got, s.status)
		}
		if got := ClassOf(s.status); !errors.Is(got, s.class) {
			t.Errorf("ClassOf(%d) = %v, want %v", s.status, got, s.class)
		}
	}
	if got := StatusOf(errors.New("no class")); got != StatusInternalServerError {
		t.Errorf("StatusOf(no class) = %d, want 500", got)
	}
}
