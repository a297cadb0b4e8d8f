// Package delta implements the Delta Lake transaction log protocol
// (delta-io/delta PROTOCOL.md): reading snapshots of a table from its
// _delta_log, committing new versions with optimistic concurrency, and the
// maintenance operations (checkpoints, metadata cleanup, vacuum). It is
// storage-independent: a table lives in a storage.Store rooted at the table.
//
// # Reading
//
// Open a table and load a Snapshot (latest, SnapshotAt a version, or
// SnapshotAsOf a time). Replay starts at the newest complete checkpoint at or
// before the version (classic, multi-part, or V2 with sidecars) and applies
// the JSON commits after it. The latest snapshot is found by name where it
// can be: a Table extends its cached snapshot by stat-ing the commit files
// after it (commits are contiguous, so the first missing name ends the log),
// and a first load reads the classic checkpoint _last_checkpoint names and
// the commits after it. The log directory is listed only when that fails
// (no usable hint, an unreadable checkpoint, a missing commit), and the
// listing then decides: a missing, empty or wrong hint changes nothing but
// the cost. A listing costs time and memory in proportion to the whole log,
// millions of files for a table committed every 500 ms for the 30 days of
// log retention; SnapshotAt an older version, History with a limit, and
// SnapshotAsOf and CleanupMetadata of a long log work by name too. Files
// are keyed by their canonical path (CanonicalPath):
// "file:/p", "file:///p", "/p" and percent-encoded spellings of one file are
// one file. The library reads reader versions 1 to 3 with the reader
// features timestampNtz, v2Checkpoint and vacuumProtocolCheck; deletion
// vectors and column mapping are refused with ErrUnsupportedFeature naming
// the feature, never read wrongly.
//
// Table.FileList is a lenient replay for inspecting a log: it returns the
// version and live files without requiring a protocol or metaData action
// (which Snapshot requires) and without the checks rows need.
//
// Parquet checkpoints are decoded straight from their column chunks
// (levels and values, no Arrow arrays); a file of a shape that decoder does
// not handle, such as one with deletion vectors, is read through Arrow.
//
// Time travel by timestamp uses in-commit timestamps on tables that have
// them, else commit file modification times (made monotonic as Delta Lake
// does). As in Delta Lake, a timestamp before the earliest reconstructable
// version or after the latest commit is an error (ErrTimestampBeforeFirst,
// ErrTimestampAfterLatest).
//
// # Committing
//
// Every commit is prepared by PrepareCommit, the one place its checks live:
// protocol, actions, partition values against their columns' types
// (ParsePartitionValue), column names, table properties
// (CheckConfiguration), delta.appendOnly. EncodeVersion then writes
// commitInfo, with an increasing in-commit timestamp on tables that enable
// them, in front of the actions. Table.Commit uses both; so does a writer
// that serializes commits itself, keeping its own Head.
//
// Commit writes _delta_log/<version>.json with storage.Store.PutIfAbsent:
// commitInfo first, then protocol, metaData, txn, remove and add actions.
// When the version is taken, Commit reads the winning commit, checks it
// against the conflict rules, and tries the next version, so non-conflicting
// writers all land with contiguous versions. The rules, checked against
// every commit after the request's ReadVersion:
//
//   - a winner that changed the protocol or the metadata conflicts;
//   - a winner that wrote a txn for an app id the request read (ReadAppIDs,
//     or a txn in the request) conflicts;
//   - a winner that removed a file the request read (ReadFiles) or removes
//     conflicts;
//   - for a request that is not a blind append and read data (ReadFiles,
//     ReadWholeTable or ReadPartitions), a winner's add with dataChange=true
//     conflicts — restricted to the ReadPartitions when only those are given,
//     any add otherwise (simpler than Delta's predicate check, and never
//     less safe);
//   - a blind append never conflicts with appends.
//
// A lost race is a *ConflictError naming the winner's version and the rule;
// errors.Is(err, ErrConflict) is true and the caller re-reads and retries.
//
// # Maintenance
//
// Checkpoint writes a classic single-file Parquet checkpoint with every
// field nullable and no empty structs, and _last_checkpoint. CleanupMetadata
// deletes commits and checkpoints older than the log retention below the
// newest checkpoint that keeps every snapshot in retention reconstructable.
// Vacuum deletes data files no snapshot in the deleted-file retention needs.
// The library has no compaction of its own: a writer compacts by writing the
// new files and committing the removes and adds with dataChange=false, which,
// as in Delta Lake, concurrent appends do not conflict with (the catalog's
// Optimize does this).
package delta
