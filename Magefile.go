//go:build mage

// Mage targets for Grafana plugin authors' habits (`mage -v build`, `mage test`, `mage package`).
// Standard library only: the real work is in cargo, npm and scripts/package.sh, so building works
// the same with or without mage installed.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Default target when mage runs without arguments.
var Default = Package

// run executes a command in dir with the caller's environment, streaming its output.
func run(dir string, env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %v (in %s): %w", name, args, dir, err)
	}
	return nil
}

// frontendEnv lets webpack's TypeScript config load on Node 20 as well as 22.
var frontendEnv = []string{`TS_NODE_COMPILER_OPTIONS={"module":"commonjs","moduleResolution":"node10"}`}

// Backend builds the static release binaries for linux amd64 and arm64 (DuckDB compiled in).
func Backend() error {
	return run(".", nil, "bash", filepath.Join("scripts", "build-static.sh"))
}

// Frontend installs the locked npm dependencies and builds module.js into frontend/dist.
func Frontend() error {
	dir := filepath.Join(".", "frontend")
	if err := run(dir, nil, "npm", "ci", "--no-audit", "--no-fund"); err != nil {
		return err
	}
	return run(dir, frontendEnv, "npm", "run", "build")
}

// Package builds backend and frontend and assembles dist/ and the plugin zip.
func Package() error {
	return run(".", nil, "bash", filepath.Join("scripts", "package.sh"))
}

// Test runs everything CI runs: Rust tests, frontend tests, packaging and the packaged-plugin test.
func Test() error {
	return run(".", nil, "bash", filepath.Join("scripts", "test.sh"))
}

// Serve runs the receiver standalone on ./data (OTLP on 127.0.0.1:4317 and :4318).
func Serve() error {
	return run(".", nil, "cargo", "run", "--release", "--", "serve")
}

// Clean removes dist/ and the zip; target/ stays warm on purpose (DuckDB builds are slow).
func Clean() error {
	matches, err := filepath.Glob("vibe-claudecode-datasource-*.zip")
	if err != nil {
		return err
	}
	for _, path := range append(matches, "dist", filepath.Join("frontend", "dist")) {
		if err := os.RemoveAll(path); err != nil {
			return err
		}
	}
	return nil
}
