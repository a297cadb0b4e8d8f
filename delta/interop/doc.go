// Package interop holds the tests that check plantlake's Delta tables against delta-rs
// (the Python deltalake package): tables this library writes read by delta-rs with the same
// rows at every version, and tables delta-rs writes read by this library. The Python scripts
// are in testdata/; rows travel as JSON.
package interop
