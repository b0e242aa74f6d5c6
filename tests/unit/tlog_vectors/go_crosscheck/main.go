// Command go_crosscheck checks ledger/tlog's formats against Go's reference implementations: golang.org/x/mod's
// sumdb/note (signed notes, the keys' text) and transparency-dev/formats (timestamped Ed25519 cosignatures and
// tlog-proof bundles). It is run by hand, not by the test suite, because building it downloads those modules.
//
//	go run . vectors > ../go_vectors.json
//	    Writes what Go makes from fixed keys: key texts, a signed checkpoint, the same cosigned by a witness (at the
//	    time of the run), a proof bundle. tests/unit/test_tlog_go_vectors.py checks that our code reads each one and
//	    makes the same bytes from the same inputs.
//	(cd ../../../.. && .venv/bin/python -m tests.unit.tlog_vectors.go_crosscheck.python_made) | go run . check
//	    Reads notes and bundles our code made and checks each with Go's packages; prints one line per artifact.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
)

const (
	logName     = "bpjs.example/ledger"
	witnessName = "witness.example/audit-board"
)

// The fixed seeds: SHA-256 of a phrase, so that the Python test derives the same keys.
func seed(phrase string) io.Reader {
	sum := sha256.Sum256([]byte(phrase))
	return bytes.NewReader(sum[:])
}

type keys struct {
	LogSigner, LogVerifier             string
	WitnessSigner01, WitnessVerifier01 string
	WitnessVerifier04                  string
}

func makeKeys() keys {
	var k keys
	var err error
	k.LogSigner, k.LogVerifier, err = note.GenerateKey(seed("bpjs-ledger test log key"), logName)
	check(err)
	k.WitnessSigner01, k.WitnessVerifier01, err = note.GenerateKey(seed("bpjs-ledger test witness key"), witnessName)
	check(err)
	k.WitnessVerifier04, err = fnote.VKeyToCosignatureV1(k.WitnessVerifier01)
	check(err)
	return k
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func b64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	check(err)
	return b
}

func vectors() {
	k := makeKeys()
	logSigner, err := note.NewSigner(k.LogSigner)
	check(err)
	logVerifier, err := note.NewVerifier(k.LogVerifier)
	check(err)
	cosigner, err := fnote.NewSignerForCosignatureV1(k.WitnessSigner01)
	check(err)
	cosigVerifier, err := fnote.NewVerifierForCosignatureV1(k.WitnessVerifier04)
	check(err)

	// The eight leaves of RFC 6962's test vectors: this is the root of all eight.
	text := logName + "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
	signed, err := note.Sign(&note.Note{Text: text}, logSigner)
	check(err)
	opened, err := note.Open(signed, note.VerifierList(logVerifier))
	check(err)
	cosigned, err := note.Sign(opened, cosigner)
	check(err)
	_, err = note.Open(cosigned, note.VerifierList(logVerifier, cosigVerifier))
	check(err)

	// Leaf 5 of the eight, with its inclusion proof, as transparency-dev/merkle's testdata/inclusion/2/happy-path.json.
	p := proof.TLogProof{Index: 5, Checkpoint: cosigned, ExtraData: b64("QEFCQw==")}
	for _, h := range []string{"vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=", "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
		"037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc="} {
		p.Hashes = append(p.Hashes, [sha256.Size]byte(b64(h)))
	}

	out := map[string]any{
		"note":              "Made by tests/unit/tlog_vectors/go_crosscheck (go run . vectors) with golang.org/x/mod and github.com/transparency-dev/formats; see its go.mod for the versions.",
		"log_signer":        k.LogSigner,
		"log_verifier":      k.LogVerifier,
		"witness_signer_01": k.WitnessSigner01,
		"witness_verifier":  k.WitnessVerifier04,
		"checkpoint_text":   text,
		"signed_checkpoint": string(signed),
		"cosigned":          string(cosigned),
		"proof_bundle":      string(p.Marshal()),
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	check(enc.Encode(out))
}

// checkInput is what python_made.py prints: the verifier keys, and artifacts our code made with them.
type checkInput struct {
	LogVerifier     string   `json:"log_verifier"`
	WitnessVerifier string   `json:"witness_verifier"`
	Notes           []string `json:"notes"`
	Bundles         []string `json:"bundles"`
}

func checkPython() {
	data, err := io.ReadAll(os.Stdin)
	check(err)
	var in checkInput
	check(json.Unmarshal(data, &in))
	logVerifier, err := note.NewVerifier(in.LogVerifier)
	check(err)
	cosigVerifier, err := fnote.NewVerifierForCosignatureV1(in.WitnessVerifier)
	check(err)
	verifiers := note.VerifierList(logVerifier, cosigVerifier)
	failed := false
	for i, msg := range in.Notes {
		n, err := note.Open([]byte(msg), verifiers)
		if err != nil {
			fmt.Printf("note %d: %v\n", i, err)
			failed = true
			continue
		}
		fmt.Printf("note %d: ok, %d signatures verified, %d unverified\n", i, len(n.Sigs), len(n.UnverifiedSigs))
	}
	for i, b := range in.Bundles {
		var p proof.TLogProof
		if err := p.Unmarshal([]byte(b)); err != nil {
			fmt.Printf("bundle %d: %v\n", i, err)
			failed = true
			continue
		}
		if !bytes.Equal(p.Marshal(), []byte(b)) {
			fmt.Printf("bundle %d: Go writes it back differently\n", i)
			failed = true
			continue
		}
		n, err := note.Open(p.Checkpoint, verifiers)
		if err != nil {
			fmt.Printf("bundle %d: checkpoint: %v\n", i, err)
			failed = true
			continue
		}
		fmt.Printf("bundle %d: ok, index %d, %d hashes, %d signatures verified\n", i, p.Index, len(p.Hashes), len(n.Sigs))
	}
	if failed {
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run . vectors|check")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "vectors":
		vectors()
	case "check":
		checkPython()
	default:
		fmt.Fprintln(os.Stderr, "usage: go run . vectors|check")
		os.Exit(2)
	}
}
