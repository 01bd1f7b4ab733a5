package testutil

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// HTTPGet fetches url and returns its body, trying again every 100 ms
// for up to within while the server (an app in a pod just started, a
// forwarded port) comes up. Anything but a 200 counts as not up yet; the
// test fails with the last answer or error when time runs out.
func HTTPGet(t testing.TB, url string, within time.Duration) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(within)
	var last error
	for {
		body, err := get(c, url)
		if err == nil {
			return body
		}
		last = err
		if time.Now().After(deadline) {
			t.Fatalf("GET %s for %v: %v", url, within, last)
			return ""
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return string(b), nil
}
