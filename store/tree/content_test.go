package tree

import (
	"encoding/hex"
	"testing"
)

// TestHashFuncKnownAnswers: each algorithm a tree hash may name is the
// standard one (BLAKE3 with its 256-bit default output), so a tree's
// hash can be recomputed by any other implementation of the record
// format.
func TestHashFuncKnownAnswers(t *testing.T) {
	tests := []struct {
		name, algo, input, want string
	}{
		{name: "blake3 empty", algo: "blake3", want: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
		{name: "blake3 abc", algo: "blake3", input: "abc", want: "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"},
		{name: "sha256 abc", algo: "sha256", input: "abc", want: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{name: "sha512 abc", algo: "sha512", input: "abc", want: "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newHash, err := hashFunc(tt.algo)
			if err != nil {
				t.Fatal(err)
			}
			h := newHash()
			h.Write([]byte(tt.input))
			if got := hex.EncodeToString(h.Sum(nil)); got != tt.want {
				t.Errorf("%s(%q) = %s, want %s", tt.algo, tt.input, got, tt.want)
			}
			// Reset, as the extraction workers use it between files.
			h.Reset()
			h.Write([]byte(tt.input))
			if got := hex.EncodeToString(h.Sum(nil)); got != tt.want {
				t.Errorf("after Reset: %s(%q) = %s, want %s", tt.algo, tt.input, got, tt.want)
			}
		})
	}
	if _, err := hashFunc("md5"); err == nil {
		t.Error("hashFunc(md5) succeeded")
	}
}

// TestPickContentAlgo: BLAKE3 where its AVX2 code runs, SHA-256 (with its
// hardware instructions) elsewhere; both are algorithms Verify knows.
func TestPickContentAlgo(t *testing.T) {
	tests := []struct {
		name string
		avx2 bool
		want string
	}{
		{name: "x86-64 with AVX2", avx2: true, want: "blake3"},
		{name: "without AVX2", avx2: false, want: "sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pickContentAlgo(tt.avx2)
			if got != tt.want {
				t.Errorf("pickContentAlgo(%v) = %q, want %q", tt.avx2, got, tt.want)
			}
			if _, err := hashFunc(got); err != nil {
				t.Errorf("hashFunc(%q): %v", got, err)
			}
		})
	}
}
