package jwtauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// MinRSABits is the smallest RSA modulus accepted, from PEM and from a JWKS alike.
const MinRSABits = 2048

// maxPEMFile bounds what LoadPEMFile and LoadSecretFile read: a certificate is a few KiB.
const maxPEMFile = 64 << 10

// key is one verification key, bound to the one algorithm it may check. The binding is what
// keeps an RSA key from ever being used as an HMAC secret: HS256 only ever gets Config.Secret.
type key struct {
	kid string
	alg string
	pub any // *rsa.PublicKey, *ecdsa.PublicKey (P-256) or ed25519.PublicKey
}

// algOf says which algorithm a public key checks, and refuses the keys this package does not
// take: RSA under MinRSABits, curves other than P-256, other key types.
func algOf(pub any) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.N.BitLen() < MinRSABits {
			return "", fmt.Errorf("RSA key of %d bits: at least %d required", bitLen(k), MinRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return "", fmt.Errorf("RSA key with exponent %d", k.E)
		}
		return RS256, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("EC key on %s: only P-256 (ES256)", k.Curve.Params().Name)
		}
		return ES256, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", fmt.Errorf("Ed25519 key of %d bytes", len(k))
		}
		return EdDSA, nil
	}
	return "", fmt.Errorf("key type %T not supported (RSA, EC P-256, Ed25519)", pub)
}

func bitLen(k *rsa.PublicKey) int {
	if k.N == nil {
		return 0
	}
	return k.N.BitLen()
}

// ParsePublicKeyPEM reads the one public key of a PEM block (PUBLIC KEY, RSA PUBLIC KEY or
// CERTIFICATE) and says which algorithm it checks. A private key, a second block or anything
// after the block is an error: a verifier holds public keys only.
func ParsePublicKeyPEM(data []byte) (pub any, alg string, err error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, "", errors.New("jwtauth: no PEM block")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, "", errors.New("jwtauth: more than one PEM block: one key per PublicKey")
	}
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, "", fmt.Errorf("jwtauth: PEM block %q is a private key: give the verifier the public key", block.Type)
	default:
		return nil, "", fmt.Errorf("jwtauth: PEM block %q: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("jwtauth: PEM block %q: %w", block.Type, err)
	}
	if alg, err = algOf(pub); err != nil {
		return nil, "", fmt.Errorf("jwtauth: %w", err)
	}
	return pub, alg, nil
}

// LoadPEMFile reads a public key from a PEM file (at most 64 KiB) into a PublicKey with the given
// kid ("" for none), checking it on the way so that a bad file is reported with its name.
func LoadPEMFile(path, kid string) (PublicKey, error) {
	data, err := readBounded(path)
	if err != nil {
		return PublicKey{}, err
	}
	if _, _, err := ParsePublicKeyPEM(data); err != nil {
		return PublicKey{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return PublicKey{KID: kid, PEM: data}, nil
}

// LoadSecretFile reads an HS256 secret from a file (at most 64 KiB), without the line break an
// editor or `echo` leaves at its end, and checks that MinSecretLen bytes remain. The bytes are
// the secret as they are: decoding base64 or hex is the caller's choice.
func LoadSecretFile(path string) ([]byte, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	if len(data) < MinSecretLen {
		return nil, fmt.Errorf("jwtauth: %s: secret of %d bytes, at least %d", path, len(data), MinSecretLen)
	}
	return data, nil
}

// readBounded reads a key file of at most maxPEMFile bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("jwtauth: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("jwtauth: %s: %w", path, err)
	}
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("jwtauth: %s: larger than %d bytes", path, maxPEMFile)
	}
	return data, nil
}

// parseStatic parses Config.PublicKeys.
func parseStatic(pks []PublicKey) ([]key, error) {
	keys := make([]key, 0, len(pks))
	for i, pk := range pks {
		pub, alg, err := ParsePublicKeyPEM(pk.PEM)
		if err != nil {
			return nil, configErr("PublicKeys[%d]: %v", i, err)
		}
		keys = append(keys, key{kid: pk.KID, alg: alg, pub: pub})
	}
	return keys, nil
}
