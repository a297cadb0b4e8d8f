// Package datafile writes Delta data files: Arrow record batches encoded as Parquet with the
// types Delta readers expect (timestamps as UTC-adjusted INT64 microseconds, no unsigned
// integers), placed in Hive-style partition directories, and described by an add action whose
// stats (numRecords, minValues, maxValues, nullCount) are computed from the rows written.
//
// Stats follow one rule: a wrong stat is worse than none, because readers skip files by them.
// Strings are cut to a prefix for min and cut-and-incremented for max; timestamps are cut to
// milliseconds with the min rounded down and the max rounded up; a float column holding NaN
// gets no bounds; types without a useful order (binary, boolean, arrays, maps) get only a
// null count.
package datafile
