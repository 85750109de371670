// Package version carries the build's version, set by the linker:
// -ldflags "-X github.com/admq/admq-manager/internal/version.Version=v1.2.3".
package version

// Version is the release this binary was built from; "dev" for local builds.
var Version = "dev"
