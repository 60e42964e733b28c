package upload

import (
	"encoding/base64"
	"hash"
	"hash/crc64"
	"io"
)

// crc64NVMEPoly is the NVMe CRC-64 polynomial in the reversed form crc64.MakeTable expects (the
// same constant the AWS SDK's checksum package uses). S3 stores CRC64NVME as a full-object
// checksum even for multipart uploads, so a value computed locally over the whole stream can be
// compared with what HeadObject reports; SeaweedFS supports it too.
const crc64NVMEPoly = 0x9a6c9329ac4bc9b5

// newCRC64NVME returns a fresh CRC64NVME hash.
func newCRC64NVME() hash.Hash64 { return crc64.New(crc64.MakeTable(crc64NVMEPoly)) }

// encodeChecksum renders a checksum the way S3 headers carry it (base64 of the big-endian sum).
func encodeChecksum(h hash.Hash) string { return base64.StdEncoding.EncodeToString(h.Sum(nil)) }

// hashingReader feeds every byte read into a hash and counts them. The transfer manager reads
// its body from one goroutine, in order, so the sum covers the object exactly as sent; it
// deliberately hides io.Seeker so the transfer manager never seeks behind the hash's back.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	if n > 0 {
		hr.h.Write(p[:n]) // hash.Hash.Write never fails
		hr.n += int64(n)
	}
	return n, err
}
