package chaos

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

//go:embed check.py
var checkScript []byte

// Check is the comparison of a run's tables with its ledger, as counts.
// Each row of raw, bronze and the dead letters is matched by its Kafka
// (topic, partition, offset) to a raw row and through its bytes to a
// ledger entry, so a reading the bridge delivered twice (an MQTT
// redelivery after a kill, allowed: at least once) is expected twice in
// raw and then once per raw row in bronze or the dead letters.
type Check struct {
	// LedgerEntries is the messages published; Unacked those without a
	// broker acknowledgement.
	LedgerEntries int64 `json:"ledger_entries"`
	Unacked       int64 `json:"unacked"`
	// ExpectedGold is the distinct gold keys of the ledger;
	// ExpectedDeadLetters its too-late and broken messages.
	ExpectedGold        int64 `json:"expected_gold"`
	ExpectedDeadLetters int64 `json:"expected_dead_letters"`
	// RawRows and RawDistinctOffsets count raw's rows and distinct Kafka
	// (topic, partition, offset); RawMissing the published messages not in
	// raw; RawUnexpected raw rows that were never published; RawRedelivered
	// the extra copies of published messages (MQTT redeliveries).
	RawRows            int64 `json:"raw_rows"`
	RawDistinctOffsets int64 `json:"raw_distinct_offsets"`
	RawMissing         int64 `json:"raw_missing"`
	RawUnexpected      int64 `json:"raw_unexpected"`
	RawRedelivered     int64 `json:"raw_redelivered"`
	// Bronze: rows, rows whose offset repeats, rows for no good raw row,
	// good raw rows without a bronze row.
	BronzeRows             int64 `json:"bronze_rows"`
	BronzeDuplicateOffsets int64 `json:"bronze_duplicate_offsets"`
	BronzeUnexpected       int64 `json:"bronze_unexpected"`
	BronzeMissing          int64 `json:"bronze_missing"`
	// Dead letters: rows, repeated offsets, rows for no broken raw row,
	// broken raw rows without one, wrong error_code, bytes unlike raw's.
	DeadLetters                int64 `json:"dead_letters"`
	DeadLetterDuplicateOffsets int64 `json:"dead_letter_duplicate_offsets"`
	DeadLettersUnexpected      int64 `json:"dead_letters_unexpected"`
	DeadLettersMissing         int64 `json:"dead_letters_missing"`
	DeadLetterCodeMismatches   int64 `json:"dead_letter_code_mismatches"`
	DeadLetterBytesMismatches  int64 `json:"dead_letter_bytes_mismatches"`
	// Gold: rows, repeated keys, expected keys missing, keys not expected,
	// keys whose value or unit differ.
	GoldRows            int64 `json:"gold_rows"`
	GoldDuplicateKeys   int64 `json:"gold_duplicate_keys"`
	GoldMissing         int64 `json:"gold_missing"`
	GoldExtra           int64 `json:"gold_extra"`
	GoldValueMismatches int64 `json:"gold_value_mismatches"`
	// Examples are a few of the differences, for a reader.
	Examples []string `json:"examples"`
}

// Differences lists every count that should be zero and is not, and the
// totals that should agree and do not.
func (c Check) Differences() []string {
	var d []string
	add := func(what string, n int64) {
		if n != 0 {
			d = append(d, fmt.Sprintf("%s: %d", what, n))
		}
	}
	add("raw: published messages missing", c.RawMissing)
	add("raw: rows never published", c.RawUnexpected)
	add("raw: (topic, partition, offset) repeated", c.RawRows-c.RawDistinctOffsets)
	add("bronze: offsets repeated", c.BronzeDuplicateOffsets)
	add("bronze: rows for no good raw row", c.BronzeUnexpected)
	add("bronze: good raw rows missing", c.BronzeMissing)
	add("dead letters: offsets repeated", c.DeadLetterDuplicateOffsets)
	add("dead letters: rows for no broken raw row", c.DeadLettersUnexpected)
	add("dead letters: broken raw rows missing", c.DeadLettersMissing)
	add("dead letters: wrong error_code", c.DeadLetterCodeMismatches)
	add("dead letters: bytes unlike raw's", c.DeadLetterBytesMismatches)
	add("gold: keys repeated", c.GoldDuplicateKeys)
	add("gold: expected keys missing", c.GoldMissing)
	add("gold: keys not expected", c.GoldExtra)
	add("gold: value or unit mismatches", c.GoldValueMismatches)
	add("ledger: messages not acknowledged", c.Unacked)
	add("raw rows minus bronze and dead letters", c.RawRows-c.BronzeRows-c.DeadLetters)
	if c.GoldRows != c.ExpectedGold {
		d = append(d, fmt.Sprintf("gold: %d rows, want %d", c.GoldRows, c.ExpectedGold))
	}
	if c.LedgerEntries == 0 {
		d = append(d, "ledger: empty")
	}
	return d
}

// CheckTables reads the ledger and the warehouse's tables with delta-rs
// (python, with deltalake and pyarrow) and compares them.
func CheckTables(ctx context.Context, python, ledger, warehouse string) (Check, error) {
	dir, err := os.MkdirTemp("", "plantlake-chaos-check")
	if err != nil {
		return Check{}, fmt.Errorf("chaos: check: %w", err)
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "check.py")
	if err := os.WriteFile(script, checkScript, 0o644); err != nil {
		return Check{}, fmt.Errorf("chaos: check: %w", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python, script, ledger, warehouse)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Check{}, fmt.Errorf("chaos: check with delta-rs: %w\n%s", err, stderr.Bytes())
	}
	var c Check
	if err := json.Unmarshal(stdout.Bytes(), &c); err != nil {
		return Check{}, fmt.Errorf("chaos: check output %q: %w\n%s", stdout.Bytes(), err, stderr.Bytes())
	}
	return c, nil
}
