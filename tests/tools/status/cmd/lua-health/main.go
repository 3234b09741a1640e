// Command lua-health runs an Argo CD resource health script (Lua, the `obj` global in, a table
// with `status` and `message` out) against each object of a YAML or JSON stream on stdin, with
// gopher-lua — the interpreter Argo CD embeds. Prints "<name>\t<status>\t<message>" per object.
//
// Usage: lua-health <script.lua> < objects.yaml
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/util/yaml"
)

// toLua converts decoded JSON into Lua values the way Argo CD does: objects and arrays become
// tables (arrays 1-based), numbers floats.
func toLua(L *lua.LState, v interface{}) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case int64:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case []interface{}:
		t := L.NewTable()
		for _, item := range x {
			t.Append(toLua(L, item))
		}
		return t
	case map[string]interface{}:
		t := L.NewTable()
		for k, item := range x {
			t.RawSetString(k, toLua(L, item))
		}
		return t
	default:
		return lua.LString(fmt.Sprint(x))
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: lua-health <script.lua> < objects.yaml")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	decoder := yaml.NewYAMLOrJSONDecoder(bufio.NewReader(os.Stdin), 4096)
	for {
		obj := map[string]interface{}{}
		err := decoder.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "decode:", err)
			os.Exit(2)
		}
		if len(obj) == 0 {
			continue
		}
		L := lua.NewState(lua.Options{SkipOpenLibs: true})
		for _, lib := range []struct {
			name string
			open lua.LGFunction
		}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
			L.Push(L.NewFunction(lib.open))
			L.Push(lua.LString(lib.name))
			L.Call(1, 0)
		}
		L.SetGlobal("obj", toLua(L, obj))
		if err := L.DoString(string(script)); err != nil {
			fmt.Fprintln(os.Stderr, "lua:", err)
			os.Exit(1)
		}
		result, ok := L.Get(-1).(*lua.LTable)
		if !ok {
			fmt.Fprintln(os.Stderr, "the script returned no table")
			os.Exit(1)
		}
		name := ""
		if meta, ok := obj["metadata"].(map[string]interface{}); ok {
			name, _ = meta["name"].(string)
		}
		fmt.Printf("%s\t%s\t%s\n", name, L.GetField(result, "status").String(), L.GetField(result, "message").String())
		L.Close()
	}
}
