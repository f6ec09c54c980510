package broker

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxDedupKeyLen bounds a PublishOnce key, in bytes: what a Deduplicator remembers of a key does
// not grow with it (DedupHash), and no idempotency key needs more.
const MaxDedupKeyLen = 1024

// DedupHash is what a Deduplicator remembers of a channel and a key: their SHA-256, a fixed size
// whatever the key, safe in any header once encoded, and with no collision a caller could make
// on purpose to have another's publication dropped. It refuses an empty key and one longer than
// MaxDedupKeyLen.
func DedupHash(channel, key string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	switch {
	case key == "":
		return sum, errors.New("broker: publish once: empty key")
	case len(key) > MaxDedupKeyLen:
		return sum, fmt.Errorf("broker: publish once: key of %d bytes, more than %d", len(key), MaxDedupKeyLen)
	}
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(channel)))]) // "ab"+"c" is not "a"+"bc"
	h.Write([]byte(channel))
	h.Write([]byte(key))
	h.Sum(sum[:0])
	return sum, nil
}
