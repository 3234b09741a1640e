//go:build tools

// Package tools pins the modules this module's commands build from.
package tools

import (
	_ "github.com/yuin/gopher-lua"
	_ "sigs.k8s.io/cli-utils/pkg/kstatus/status"
)
