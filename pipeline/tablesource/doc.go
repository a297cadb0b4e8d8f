// Package tablesource follows a Delta table through the catalog, for the hops
// that read a table and write another (deserialize reads raw, merge reads
// bronze).
//
// A [Follower] hands out [Batch]es of whole table versions after a position:
// the last source version the hop has processed, which the hop stores as a
// txn action in its target table, so the position survives any crash. The
// catalog's GetChanges is the truth about what each version did; the
// TableCommitEvents on plantlake.table-commits only wake a waiting [Follower.Next]
// early. Events are delivered at least once and may skip versions, come twice or
// out of order, or not come at all (Kafka down, topic missing): the follower
// then still finds every version by polling GetChanges every PollInterval.
//
// A batch carries, per version, only the files that version added with
// dataChange=true. A compaction re-adds rows that were read before
// (dataChange=false) and is never read again; removes are ignored, as the
// tables followed are append-only. Versions without such adds (compactions,
// txn-only or metadata commits) still advance [Batch.ToVersion], so the
// position moves past them.
//
// [Batch.Read] streams the rows of the batch's files as Arrow record batches,
// one file's record batch at a time, through the Delta library's reader. A
// file that is gone (vacuumed before it was read) fails the read with an
// error wrapping [ErrFilesGone] that names the version and the file: the rows
// would otherwise be lost without a trace.
//
// Use:
//
//	f, err := tablesource.New(cfg, client, log)
//	go f.Run(ctx) // wake-ups from Kafka; owned and waited for by the caller
//	for {
//		b, err := f.Next(ctx, pos, time.Second)
//		...
//		err = b.Read(ctx, nil, func(version int64, rec arrow.RecordBatch) error { ... })
//		... commit the derived rows with txn version b.ToVersion, then pos = b.ToVersion
//	}
package tablesource
