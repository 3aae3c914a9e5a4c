// Package gitfs registers the git URL schemes only to refuse them with a clear error.
package gitfs

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"

	"github.com/hairyhenderson/go-fsimpl"
)

// ErrUnsupported is returned for every git URL.
var ErrUnsupported = errors.New("git policy sources are not supported by this build")

// FS is the provider for the git schemes; New always fails.
var FS = fsimpl.FSProviderFunc(New, "git", "git+file", "git+http", "git+https", "git+ssh")

// New always returns ErrUnsupported.
func New(u *url.URL) (fs.FS, error) {
	return nil, fmt.Errorf("%s: %w", u.Redacted(), ErrUnsupported)
}
