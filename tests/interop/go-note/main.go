// Command go-note checks warrant's log against Go's reference
// implementation of C2SP signed notes and transparency logs
// (golang.org/x/mod/sumdb/note and .../tlog), sharing no code with warrant.
//
//	go-note VKEY_FILE CHECKPOINT_FILE [ENTRY_FILE INDEX PROOF_HEX...]
//	go-note VKEY_FILE CHECKPOINT_FILE tiles BASE_URL ENTRY_FILE INDEX
//
// It verifies the checkpoint note with the verifier key, checks that its
// origin is the key's name, and prints "<origin> <tree size> <base64 root>".
// Given a record's entry (its canonical JSON), its index and an inclusion
// proof (hex hashes, leaf level first), it also checks with tlog.CheckRecord
// that the entry is in the tree the checkpoint signs, and prints "included".
// With "tiles", it builds the proof itself from the log's C2SP hash tiles
// under BASE_URL (tlog.TileHashReader, which authenticates every tile it
// reads against the checkpoint's root) and prints "included via tiles".
// Any failure prints why and exits 1.
package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
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
	if os.Args[3] == "tiles" {
		if len(os.Args) != 7 {
			fail("usage: go-note VKEY_FILE CHECKPOINT_FILE tiles BASE_URL ENTRY_FILE INDEX")
		}
		viaTiles(os.Args[4], os.Args[5], os.Args[6], tlog.Tree{N: size, Hash: root})
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

// httpTiles reads C2SP hash tiles over HTTP. Go's Tile.Path() is the Go
// checksum database's layout ("tile/8/<L>/<N>"); C2SP has no height element.
type httpTiles struct{ base string }

func (r *httpTiles) Height() int { return 8 }

func (r *httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		path := "tile/" + strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", t.H))
		resp, err := http.Get(r.base + path)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: %s", path, resp.Status)
		}
		if len(body) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("%s: %d bytes, want %d", path, len(body), t.W*tlog.HashSize)
		}
		out[i] = body
	}
	return out, nil
}

func (r *httpTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func viaTiles(base, entryFile, indexText string, tree tlog.Tree) {
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	entry, err := os.ReadFile(entryFile)
	if err != nil {
		fail("%v", err)
	}
	index, err := strconv.ParseInt(indexText, 10, 64)
	if err != nil {
		fail("index: %v", err)
	}
	reader := tlog.TileHashReader(tree, &httpTiles{base: base})
	proof, err := tlog.ProveRecord(tree.N, index, reader)
	if err != nil {
		fail("tiles: %v", err)
	}
	if err := tlog.CheckRecord(proof, tree.N, tree.Hash, index, tlog.RecordHash(entry)); err != nil {
		fail("inclusion: %v", err)
	}
	fmt.Println("included via tiles")
}
