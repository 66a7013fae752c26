package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var timeType = reflect.TypeFor[time.Time]()

// checkEqual reports every field in which got differs from want. Times are
// equal when within Precision of each other (and zero only when both are);
// nil and empty slices are equal, as are nil and empty maps.
func checkEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if d := diff(got, want); len(d) > 0 {
		t.Errorf("%s is not what was stored:\n\t%s", what, strings.Join(d, "\n\t"))
	}
}

// diff lists the fields in which got differs from want.
func diff(got, want any) []string {
	var out []string
	diffValue("", reflect.ValueOf(got), reflect.ValueOf(want), &out)
	return out
}

func diffValue(path string, got, want reflect.Value, out *[]string) {
	if got.Type() == timeType {
		g, w := got.Interface().(time.Time), want.Interface().(time.Time)
		if !sameTime(g, w) {
			*out = append(*out, fmt.Sprintf("%s = %s, want %s", path, fmtTime(g), fmtTime(w)))
		}
		return
	}
	switch got.Kind() {
	case reflect.Pointer:
		if got.IsNil() || want.IsNil() {
			if got.IsNil() != want.IsNil() {
				*out = append(*out, fmt.Sprintf("%s: got nil %v, want nil %v", path, got.IsNil(), want.IsNil()))
			}
			return
		}
		diffValue(path, got.Elem(), want.Elem(), out)
	case reflect.Struct:
		for i := range got.NumField() {
			diffValue(path+"."+got.Type().Field(i).Name, got.Field(i), want.Field(i), out)
		}
	case reflect.Slice:
		if got.Len() != want.Len() {
			*out = append(*out, fmt.Sprintf("%s = %#v, want %#v", path, got.Interface(), want.Interface()))
			return
		}
		for i := range got.Len() {
			diffValue(fmt.Sprintf("%s[%d]", path, i), got.Index(i), want.Index(i), out)
		}
	case reflect.Map:
		if got.Len() == 0 && want.Len() == 0 {
			return
		}
		if !reflect.DeepEqual(got.Interface(), want.Interface()) {
			*out = append(*out, fmt.Sprintf("%s = %#v, want %#v", path, got.Interface(), want.Interface()))
		}
	default:
		if !reflect.DeepEqual(got.Interface(), want.Interface()) {
			*out = append(*out, fmt.Sprintf("%s = %#v, want %#v", path, got.Interface(), want.Interface()))
		}
	}
}

// sameTime reports whether a time read back from a store matches the time
// stored, to Precision.
func sameTime(got, want time.Time) bool {
	if got.IsZero() || want.IsZero() {
		return got.IsZero() == want.IsZero()
	}
	d := got.Sub(want)
	return -Precision < d && d < Precision
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero time"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// checkTime reports an error unless got matches want to Precision.
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !sameTime(got, want) {
		t.Errorf("%s = %s, want %s", what, fmtTime(got), fmtTime(want))
	}
}

// checkIDs reports an error unless got lists exactly want, in order.
func checkIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// ids maps records to their identifiers.
func ids[T any](list []T, id func(T) string) []string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = id(v)
	}
	return out
}

// clone deep-copies a record so that the test keeps what it stored.
func clone[T any](v *T) *T {
	out := new(T)
	deepCopy(reflect.ValueOf(out).Elem(), reflect.ValueOf(v).Elem())
	return out
}

func deepCopy(dst, src reflect.Value) {
	switch {
	case src.Type() == timeType:
		dst.Set(src)
	case src.Kind() == reflect.Struct:
		for i := range src.NumField() {
			deepCopy(dst.Field(i), src.Field(i))
		}
	case src.Kind() == reflect.Slice && !src.IsNil():
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			deepCopy(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case src.Kind() == reflect.Map && !src.IsNil():
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		for it := src.MapRange(); it.Next(); {
			v := reflect.New(src.Type().Elem()).Elem()
			deepCopy(v, it.Value())
			m.SetMapIndex(it.Key(), v)
		}
		dst.Set(m)
	case src.Kind() == reflect.Interface && !src.IsNil():
		v := reflect.New(src.Elem().Type()).Elem()
		deepCopy(v, src.Elem())
		dst.Set(v)
	case src.Kind() == reflect.Pointer && !src.IsNil():
		p := reflect.New(src.Elem().Type())
		deepCopy(p.Elem(), src.Elem())
		dst.Set(p)
	default:
		dst.Set(src)
	}
}

// scribble overwrites, in place, every element of every slice inside the
// record v points to, every value of every map of JSON values
// (map[string]any, such as Grant.Claims, nested maps and lists included)
// and the records that slices of pointers point to, and reports how many
// elements it changed. A store that kept or handed out its callers' slices
// or maps would see the change.
func scribble(v any) int {
	return scribbleValue(reflect.ValueOf(v).Elem())
}

func scribbleValue(v reflect.Value) int {
	n := 0
	switch {
	case v.Type() == timeType:
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			n += scribbleValue(v.Field(i))
		}
	case v.Kind() == reflect.Map && v.Type() == jsonObjectType:
		if !v.IsNil() {
			n += scribbleJSON(v.Interface())
		}
	case v.Kind() == reflect.Slice:
		for i := range v.Len() {
			e := v.Index(i)
			switch e.Kind() {
			case reflect.String:
				e.SetString(e.String() + "-scribbled")
			case reflect.Uint8:
				e.SetUint(e.Uint() ^ 0xff)
			case reflect.Pointer:
				if !e.IsNil() {
					n += scribbleValue(e.Elem())
				}
				continue
			default:
				panic("storetest: scribble: unsupported slice element " + e.Type().String())
			}
			n++
		}
	}
	return n
}

var jsonObjectType = reflect.TypeFor[map[string]any]()

// scribbleJSON changes, in place, every scalar inside a map or list of
// JSON values, and returns how many it changed.
func scribbleJSON(v any) int {
	n := 0
	change := func(e any) any {
		switch e := e.(type) {
		case map[string]any, []any:
			n += scribbleJSON(e)
			return e
		case string:
			n++
			return e + "-scribbled"
		case float64:
			n++
			return e + 1
		case bool:
			n++
			return !e
		}
		n++
		return "scribbled"
	}
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = change(e)
		}
	case []any:
		for i, e := range v {
			v[i] = change(e)
		}
	}
	return n
}

// unset lists the fields of the record v points to that hold their zero
// value, other than those named in except. It guards the round-trip tests
// against fixtures that leave fields out (for instance after a field is
// added to a record type).
func unset(v any, except ...string) []string {
	var out []string
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		if v.Kind() == reflect.Struct && v.Type() != timeType {
			for i := range v.NumField() {
				walk(strings.TrimPrefix(path+"."+v.Type().Field(i).Name, "."), v.Field(i))
			}
			return
		}
		if v.IsZero() || ((v.Kind() == reflect.Slice || v.Kind() == reflect.Map) && v.Len() == 0) {
			for _, e := range except {
				if path == e || strings.HasSuffix(path, "."+e) {
					return
				}
			}
			out = append(out, path)
		}
	}
	walk("", reflect.ValueOf(v).Elem())
	return out
}

// checkAllSet fails the test if the fixture record v leaves a field unset.
func checkAllSet(t *testing.T, what string, v any, except ...string) {
	t.Helper()
	if u := unset(v, except...); len(u) > 0 {
		t.Fatalf("fixture %s leaves fields unset, so the round trip would not test them: %v", what, u)
	}
}
