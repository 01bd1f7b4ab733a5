// Package abiargs parses the argv of the stage1 entrypoints (run, enter,
// gc, stop) as pkg/stage1abi defines them, once for every flavor. A flavor
// refuses, in its own entrypoint, the values it cannot honour (fly, for
// instance, has no network of its own).
package abiargs
