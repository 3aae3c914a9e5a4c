// Package filefs opens file:// URLs of local, absolute directories as an fs.FS (os.DirFS).
package filefs

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"

	"github.com/hairyhenderson/go-fsimpl"
)

// FS is the provider for the "file" scheme.
var FS = fsimpl.FSProviderFunc(New, "file")

// New returns os.DirFS of the directory the URL names. The URL must be file:///abs/path
// (or file://localhost/abs/path); the directory must exist.
func New(u *url.URL) (fs.FS, error) {
	if u.Scheme != "file" {
		return nil, fmt.Errorf("filefs: unsupported scheme %q in %q", u.Scheme, u.String())
	}
	if u.Opaque != "" {
		return nil, fmt.Errorf("filefs: %q is a relative path; use file:///absolute/path", u.String())
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("filefs: %q names host %q; only local paths (file:///absolute/path) are supported", u.String(), u.Host)
	}
	if u.Path == "" || !path.IsAbs(u.Path) {
		return nil, fmt.Errorf("filefs: %q is not an absolute path; use file:///absolute/path", u.String())
	}
	dir := path.Clean(u.Path)
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("filefs: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("filefs: %s is not a directory", dir)
	}
	return os.DirFS(dir), nil
}
