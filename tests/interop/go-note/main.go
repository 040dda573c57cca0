// Command go-note checks warrant's log against Go's reference
// implementation of C2SP signed notes and transparency logs
// (golang.org/x/mod/sumdb/note and .../tlog), sharing no code with warrant.
//
//	go-note VKEY_FILE CHECKPOINT_FILE [ENTRY_FILE INDEX PROOF_HEX...]
//	go-note VKEY_FILE CHECKPOINT_FILE tiles BASE_URL ENTRY_FILE INDEX
//	go-note VKEY_FILE CHECKPOINT_FILE cosigned QUORUM WITNESS_VKEY_FILE...
//
// It verifies the checkpoint note with the verifier key, checks that its
// origin is the key's name, and prints "<origin> <tree size> <base64 root>".
// Given a record's entry (its canonical JSON), its index and an inclusion
// proof (hex hashes, leaf level first), it also checks with tlog.CheckRecord
// that the entry is in the tree the checkpoint signs, and prints "included".
// With "tiles", it builds the proof itself from the log's C2SP hash tiles
// under BASE_URL (tlog.TileHashReader, which authenticates every tile it
// reads against the checkpoint's root) and prints "included via tiles".
// With "cosigned", it checks the checkpoint's witness cosignatures
// (c2sp.org/tlog-cosignature@v1.0.1, Ed25519, type 0x04) with note.Open and
// a note.Verifier written here, prints "cosigned <name> <timestamp>" for
// each witness whose cosignature verifies, and fails unless at least QUORUM
// did. Any failure prints why and exits 1.
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
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
	if os.Args[3] == "cosigned" {
		cosigned(msg, os.Args[4], os.Args[5:])
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

// cosigV1 verifies Ed25519 cosignatures (type 0x04). note.Open passes Verify
// the note text and the signature without its key hash: an 8-byte
// big-endian timestamp, then the Ed25519 signature of
// "cosignature/v1\ntime <timestamp>\n" followed by the text.
type cosigV1 struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (v *cosigV1) Name() string    { return v.name }
func (v *cosigV1) KeyHash() uint32 { return v.hash }
func (v *cosigV1) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t > 1<<63-1 {
		return false
	}
	m := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), msg...)
	return ed25519.Verify(v.key, m, sig[8:])
}

// newCosigV1 parses a cosigner vkey "<name>+<hex key hash>+<base64(0x04 || key)>".
func newCosigV1(vkey string) (*cosigV1, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 || len(parts[1]) != 8 {
		return nil, errors.New("malformed cosigner key")
	}
	hash, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil {
		return nil, errors.New("malformed cosigner key hash")
	}
	key, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != 0x04 {
		return nil, errors.New("not an Ed25519 cosigner key (type 0x04)")
	}
	h := sha256.Sum256(append([]byte(parts[0]+"\n"), key...))
	if binary.BigEndian.Uint32(h[:4]) != uint32(hash) {
		return nil, errors.New("cosigner key hash does not match")
	}
	return &cosigV1{name: parts[0], hash: uint32(hash), key: ed25519.PublicKey(key[1:])}, nil
}

func cosigned(msg []byte, quorumText string, vkeyFiles []string) {
	quorum, err := strconv.Atoi(quorumText)
	if err != nil || quorum < 0 {
		fail("quorum %q", quorumText)
	}
	var witnesses []note.Verifier
	for _, file := range vkeyFiles {
		vkey, err := os.ReadFile(file)
		if err != nil {
			fail("%v", err)
		}
		v, err := newCosigV1(strings.TrimSpace(string(vkey)))
		if err != nil {
			fail("%s: %v", file, err)
		}
		witnesses = append(witnesses, v)
	}
	n, err := note.Open(msg, note.VerifierList(witnesses...))
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		n, err = unverified.Note, nil // no witness cosigned: a quorum of 0 still passes
	}
	if err != nil {
		fail("cosignatures: %v", err)
	}
	for _, s := range n.Sigs {
		b, _ := base64.StdEncoding.DecodeString(s.Base64)
		fmt.Printf("cosigned %s %d\n", s.Name, binary.BigEndian.Uint64(b[4:12]))
	}
	if len(n.Sigs) < quorum {
		fail("%d of %d witnesses cosigned, %d required", len(n.Sigs), len(witnesses), quorum)
	}
}
