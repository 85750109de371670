package apollo

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

// decodeKey reads the key of an encodedItems path: the key's UTF-8 bytes
// in standard base64, padding optional, as Apollo's clients send a key
// holding '/' or '\' (which no proxy would pass in a path segment). The
// segment arrives already path-unescaped ("%2F" is '/').
func decodeKey(s string) (string, error) {
	if s == "" {
		return "", badRequest("encoded key is empty")
	}
	// Go's decoder skips newlines; Java's basic decoder, like us, does not.
	if i := strings.IndexFunc(s, func(r rune) bool { return !isBase64(r) }); i >= 0 {
		return "", badRequest("encoded key %q is not base64 (standard alphabet): bad character at %d", truncate(s, 64), i)
	}
	enc := base64.StdEncoding
	if !strings.HasSuffix(s, "=") {
		enc = base64.RawStdEncoding
	}
	b, err := enc.Strict().DecodeString(s)
	if err != nil {
		return "", badRequest("encoded key %q is not base64 (standard alphabet): %v", truncate(s, 64), err)
	}
	if !utf8.Valid(b) {
		return "", badRequest("encoded key %q does not decode to UTF-8 text", truncate(s, 64))
	}
	if len(b) == 0 {
		return "", badRequest("encoded key decodes to an empty key")
	}
	return string(b), nil
}

// encodeKey is what a client puts in an encodedItems path for key.
func encodeKey(key string) string { return base64.StdEncoding.EncodeToString([]byte(key)) }

// needsEncoding reports whether Apollo's clients send key through
// encodedItems: when it holds '/' or '\'.
func needsEncoding(key string) bool { return strings.ContainsAny(key, `/\`) }

func isBase64(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/' || r == '='
}
