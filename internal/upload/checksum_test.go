package upload

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"io"
	"testing"
)

func TestCRC64NVME(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want uint64
	}{
		// The check value of the CRC-64/NVME catalogue entry.
		{name: "check value", in: "123456789", want: 0xae8b14860a799888},
		{name: "empty", in: "", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newCRC64NVME()
			h.Write([]byte(tt.in))
			if got := h.Sum64(); got != tt.want {
				t.Fatalf("crc64nvme(%q) = %#x, want %#x", tt.in, got, tt.want)
			}
			want := make([]byte, 8)
			binary.BigEndian.PutUint64(want, tt.want)
			if got := encodeChecksum(h); got != base64.StdEncoding.EncodeToString(want) {
				t.Errorf("encodeChecksum = %q, want base64 of the big-endian sum", got)
			}
		})
	}
}

func TestHashingReaderCoversEveryByte(t *testing.T) {
	data := bytes.Repeat([]byte("credsidecar-"), 100_000)
	hr := &hashingReader{r: bytes.NewReader(data), h: newCRC64NVME()}
	// Odd-sized reads, as the transfer manager's part buffers produce.
	buf := make([]byte, 7919)
	for {
		_, err := hr.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	whole := newCRC64NVME()
	whole.Write(data)
	if hr.n != int64(len(data)) || hr.h.(interface{ Sum64() uint64 }).Sum64() != whole.Sum64() {
		t.Fatalf("read %d bytes sum %x, want %d bytes sum %x", hr.n, hr.h.Sum(nil), len(data), whole.Sum64())
	}
	if _, ok := any(hr).(io.Seeker); ok {
		t.Error("hashingReader must not expose Seek: a seek would desynchronise the hash")
	}
}
