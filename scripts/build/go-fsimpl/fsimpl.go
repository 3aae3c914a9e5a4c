// Package fsimpl is a minimal stand-in for github.com/hairyhenderson/go-fsimpl, written for
// this project: it maps a URL's scheme to a provider that opens the URL as an fs.FS.
package fsimpl

import (
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strings"
)

// FSProvider opens URLs of the schemes it lists as file systems.
type FSProvider interface {
	// New returns the file system the URL names.
	New(u *url.URL) (fs.FS, error)
	// Schemes lists the URL schemes New accepts.
	Schemes() []string
}

type providerFunc struct {
	fn      func(*url.URL) (fs.FS, error)
	schemes []string
}

func (p providerFunc) New(u *url.URL) (fs.FS, error) { return p.fn(u) }

func (p providerFunc) Schemes() []string { return append([]string(nil), p.schemes...) }

// FSProviderFunc makes an FSProvider from a function and the schemes it handles.
func FSProviderFunc(fn func(*url.URL) (fs.FS, error), schemes ...string) FSProvider {
	return providerFunc{fn: fn, schemes: append([]string(nil), schemes...)}
}

// FSMux looks up the provider for a URL by its scheme.
type FSMux map[string]FSProvider

// NewMux returns an empty FSMux.
func NewMux() FSMux { return FSMux{} }

// Add registers the provider for each of its schemes (a later provider replaces an earlier one).
func (m FSMux) Add(p FSProvider) {
	for _, s := range p.Schemes() {
		m[strings.ToLower(s)] = p
	}
}

// Lookup parses the URL and opens it with the provider registered for its scheme.
func (m FSMux) Lookup(raw string) (fs.FS, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid policy source URL %q: %w", raw, err)
	}
	p, ok := m[strings.ToLower(u.Scheme)]
	if !ok {
		known := make([]string, 0, len(m))
		for s := range m {
			known = append(known, s)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("policy source %q: no provider for scheme %q (supported: %s)", raw, u.Scheme, strings.Join(known, ", "))
	}
	return p.New(u)
}
