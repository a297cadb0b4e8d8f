package storage

import "bytes"

// BytesFile returns a File that reads b, for stores that fetch a small
// object whole at Open rather than range by range.
func BytesFile(b []byte) File { return bytesFile{bytes.NewReader(b)} }

type bytesFile struct{ *bytes.Reader }

func (bytesFile) Close() error { return nil }
