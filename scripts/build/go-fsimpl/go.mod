module github.com/hairyhenderson/go-fsimpl

go 1.22
