package snapshot_test

import (
	"encoding/binary"
	"hash/crc32"
)

// fixChecksum recomputes the checksum of a snapshot edited by a test.
func fixChecksum(b []byte) []byte {
	n := len(b) - 4
	binary.BigEndian.PutUint32(b[n:], crc32.Checksum(b[:n], crc32.MakeTable(crc32.Castagnoli)))
	return b
}
