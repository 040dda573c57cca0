// Command go-note checks warrant's log against Go's reference
// implementation of C2SP signed notes and transparency logs
// (golang.org/x/mod/sumdb/note and .../tlog), sharing no code with warrant.
//
//	go-note VKEY_FILE CHECKPOINT_FILE [ENTRY_FILE INDEX PROOF_HEX...]
//
// It verifies the checkpoint note with the verifier key, checks that its
// origin is the key's name, and prints "<origin> <tree size> <base64 root>".
// Given a record's entry (its canonical JSON), its index and an inclusion
// proof (hex hashes, leaf level first), it also checks with tlog.CheckRecord
// that the entry is in the tree the checkpoint signs, and prints "included".
// Any failure prints why and exits 1.
package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go-note: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 3 && len(os.Args) < 5 {
		fail("usage: go-note VKEY_FILE CHECKPOINT_FILE [ENTRY_FILE INDEX PROOF_HEX...]")
	}
	vkey, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	msg, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail("%v", err)
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		fail("verifier key: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		fail("checkpoint: malformed text %q", n.Text)
	}
	origin := lines[0]
	if origin != verifier.Name() {
		fail("checkpoint: origin %q is not the key's name %q", origin, verifier.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		fail("checkpoint: tree size %q", lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		fail("checkpoint: root: %v", err)
	}
	fmt.Printf("%s %d %s\n", origin, size, root)
	if len(os.Args) == 3 {
		return
	}
	entry, err := os.ReadFile(os.Args[3])
	if err != nil {
		fail("%v", err)
	}
	index, err := strconv.ParseInt(os.Args[4], 10, 64)
	if err != nil {
		fail("index: %v", err)
	}
	var proof tlog.RecordProof
	for _, h := range os.Args[5:] {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != tlog.HashSize {
			fail("proof hash %q", h)
		}
		var hash tlog.Hash
		copy(hash[:], b)
		proof = append(proof, hash)
	}
	if err := tlog.CheckRecord(proof, size, root, index, tlog.RecordHash(entry)); err != nil {
		fail("inclusion: %v", err)
	}
	fmt.Println("included")
}
