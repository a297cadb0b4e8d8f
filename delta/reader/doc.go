// Package reader reads the rows of a Delta table snapshot as Arrow record batches.
//
// It takes the live files, schema and partition columns from a *delta.Snapshot, reads each
// Parquet file with arrow-go's pqarrow, and shapes every batch to the table schema: a column
// missing from an older file is null, a narrower type is widened (int to long, float to
// double, a smaller decimal to a wider one, millisecond or INT96 timestamps to microseconds),
// and partition values come back as typed columns. Filters (column op literal, ANDed) skip
// whole files by partition values and by the min/max/nullCount stats of the add actions, then
// select rows exactly; only the projected columns are returned.
//
// Tables that need deletion vectors or column mapping are refused with an error wrapping
// delta.ErrUnsupportedFeature that names the feature; the reader never returns wrong rows.
package reader
