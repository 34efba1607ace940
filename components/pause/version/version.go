// Package version holds the version of the bundle's pause image; the pause
// program prints it and the bundle builder tags the image with it.
package version

// Pause is bumped whenever components/pause changes.
const Pause = "3.10-kubeforge.1"
