package gateway

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Decode fills a Config from a tree of maps, lists and scalars, as a YAML or TOML parser (or
// koanf's Raw) gives it, with the koanf tag of each field as its key. Every key it does not know
// and every value of the wrong type is an error naming its key ("auth.jwt.isuer: unknown key",
// "namespaces[1].history_size: want a whole number"); all of them are returned, joined. Strings
// are accepted for every scalar (what an environment variable or a flag gives): "10s" for a
// duration, "true" for a bool, "a,b" for a list of strings.
func Decode(tree map[string]any) (Config, error) {
	var c Config
	var errs []error
	decodeStruct(reflect.ValueOf(&c).Elem(), tree, "", &errs)
	return c, errors.Join(errs...)
}

// Keys lists every key of Config in the form Decode takes (namespaces[] for the list's items),
// in field order: what docs/CONFIG.md must document.
func Keys() []string {
	var keys []string
	listKeys(reflect.TypeFor[Config](), "", &keys)
	return keys
}

func listKeys(t reflect.Type, prefix string, keys *[]string) {
	for _, f := range fields(t) {
		key := join(prefix, f.key)
		ft := f.typ
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]():
			listKeys(ft, key, keys)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			*keys = append(*keys, key)
			listKeys(ft.Elem(), key+"[]", keys)
		default:
			*keys = append(*keys, key)
		}
	}
}

// field is a settable field of a config struct: its key and its index path (embedded structs
// are flattened, as koanf's ",squash" does).
type field struct {
	key   string
	index []int
	typ   reflect.Type
}

func fields(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("koanf")
		if sf.Anonymous && strings.HasSuffix(tag, ",squash") {
			for _, sub := range fields(sf.Type) {
				sub.index = append([]int{i}, sub.index...)
				fs = append(fs, sub)
			}
			continue
		}
		if tag == "" || tag == "-" {
			continue
		}
		fs = append(fs, field{key: tag, index: []int{i}, typ: sf.Type})
	}
	return fs
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func decodeStruct(v reflect.Value, tree map[string]any, prefix string, errs *[]error) {
	known := map[string]field{}
	for _, f := range fields(v.Type()) {
		known[f.key] = f
	}
	keys := make([]string, 0, len(tree))
	for k := range tree {
		keys = append(keys, k)
	}
	slices.Sort(keys) // errors in a stable order
	for _, k := range keys {
		f, ok := known[k]
		if !ok {
			*errs = append(*errs, fmt.Errorf("%s: unknown key", join(prefix, k)))
			continue
		}
		decodeValue(v.FieldByIndex(f.index), tree[k], join(prefix, k), errs)
	}
}

var durationType = reflect.TypeFor[time.Duration]()

func decodeValue(v reflect.Value, x any, key string, errs *[]error) {
	fail := func(format string, args ...any) {
		*errs = append(*errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if x == nil { // "key:" with nothing after it: the default
		return
	}
	t := v.Type()
	switch {
	case t == durationType:
		d, err := toDuration(x)
		if err != nil {
			fail("%v", err)
			return
		}
		v.SetInt(int64(d))
	case t.Kind() == reflect.Pointer:
		p := reflect.New(t.Elem())
		n := len(*errs)
		decodeValue(p.Elem(), x, key, errs)
		if len(*errs) == n {
			v.Set(p)
		}
	case t.Kind() == reflect.String:
		s, ok := scalarString(x)
		if !ok {
			fail("want a string, got %s", kindOf(x))
			return
		}
		v.SetString(s)
	case t.Kind() == reflect.Bool:
		b, err := toBool(x)
		if err != nil {
			fail("%v", err)
			return
		}
		v.SetBool(b)
	case t.Kind() == reflect.Int:
		n, err := toInt(x)
		if err != nil {
			fail("%v", err)
			return
		}
		v.SetInt(int64(n))
	case t.Kind() == reflect.Float64:
		f, err := toFloat(x)
		if err != nil {
			fail("%v", err)
			return
		}
		v.SetFloat(f)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		l, err := toStrings(x)
		if err != nil {
			fail("%v", err)
			return
		}
		v.Set(reflect.ValueOf(l))
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		items, ok := x.([]any)
		if !ok {
			fail("want a list, got %s", kindOf(x))
			return
		}
		s := reflect.MakeSlice(t, len(items), len(items))
		for i, item := range items {
			m, ok := item.(map[string]any)
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s[%d]: want a map of keys, got %s", key, i, kindOf(item)))
				continue
			}
			decodeStruct(s.Index(i), m, fmt.Sprintf("%s[%d]", key, i), errs)
		}
		v.Set(s)
	case t.Kind() == reflect.Struct:
		m, ok := x.(map[string]any)
		if !ok {
			fail("want a map of keys, got %s", kindOf(x))
			return
		}
		decodeStruct(v, m, key, errs)
	default:
		fail("cannot be set (type %s)", t) // a field type Decode does not know: a bug caught by its test
	}
}

func kindOf(x any) string {
	switch x.(type) {
	case map[string]any:
		return "a map"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a bool"
	}
	return fmt.Sprintf("%T", x)
}

// scalarString is x as a string when x is a scalar (YAML reads "123" as a number).
func scalarString(x any) (string, bool) {
	switch x := x.(type) {
	case string:
		return x, true
	case int, int64, uint64, float64, bool:
		return fmt.Sprint(x), true
	}
	return "", false
}

func toBool(x any) (bool, error) {
	switch x := x.(type) {
	case bool:
		return x, nil
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
			return b, nil
		}
	}
	return false, fmt.Errorf("want true or false, got %s", describe(x))
}

func toInt(x any) (int, error) {
	switch x := x.(type) {
	case int:
		return x, nil
	case int64:
		if x >= math.MinInt && x <= math.MaxInt {
			return int(x), nil
		}
	case uint64:
		if x <= math.MaxInt {
			return int(x), nil
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int(x), nil
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("want a whole number, got %s", describe(x))
}

func toFloat(x any) (float64, error) {
	var f float64
	switch x := x.(type) {
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint64:
		f = float64(x)
	case float64:
		f = x
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
			return 0, fmt.Errorf("want a number, got %s", describe(x))
		}
	default:
		return 0, fmt.Errorf("want a number, got %s", describe(x))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("want a finite number, got %s", describe(x))
	}
	return f, nil
}

func toDuration(x any) (time.Duration, error) {
	switch x := x.(type) {
	case string:
		if d, err := time.ParseDuration(strings.TrimSpace(x)); err == nil {
			return d, nil
		}
	case int:
		if x == 0 {
			return 0, nil
		}
	case int64:
		if x == 0 {
			return 0, nil
		}
	}
	return 0, fmt.Errorf("want a duration such as 10s, 1m30s or 500ms, got %s", describe(x))
}

// toStrings takes a list of scalars, or one string of comma-separated items (blanks dropped).
func toStrings(x any) ([]string, error) {
	if s, ok := x.(string); ok {
		var l []string
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				l = append(l, e)
			}
		}
		return l, nil
	}
	items, ok := x.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list of strings, got %s", describe(x))
	}
	l := make([]string, 0, len(items))
	for i, item := range items {
		s, ok := scalarString(item)
		if !ok {
			return nil, fmt.Errorf("item %d: want a string, got %s", i, kindOf(item))
		}
		l = append(l, s)
	}
	return l, nil
}

// describe shows a bad value briefly: a string quoted and cut, anything else by its kind.
func describe(x any) string {
	if s, ok := x.(string); ok {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return strconv.Quote(s)
	}
	if s, ok := scalarString(x); ok {
		return s
	}
	return kindOf(x)
}
