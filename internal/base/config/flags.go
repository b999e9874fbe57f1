package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// BindFlags registers one flag per configuration key on fs, named by the
// dotted YAML path with dashes for underscores (capture.stall_timeout is
// --capture.stall-timeout; the underscore spelling is accepted too), with
// cfg's current values as defaults.
// Call Apply after parsing to copy the flags the user set over a config
// loaded from file.
func BindFlags(fs *pflag.FlagSet, cfg *Config) {
	fs.SetNormalizeFunc(NormalizeFlagName)
	walk(reflect.ValueOf(cfg).Elem(), "", func(name, usage string, field reflect.Value) {
		switch p := field.Addr().Interface().(type) {
		case *string:
			fs.String(name, *p, usage)
		case *int:
			fs.Int(name, *p, usage)
		case *float64:
			fs.Float64(name, *p, usage)
		case *bool:
			fs.Bool(name, *p, usage)
		case *time.Duration:
			fs.Duration(name, *p, usage)
		case *[]string:
			fs.StringSlice(name, *p, usage)
		default:
			panic(fmt.Sprintf("config: field %s has unsupported type %s", name, field.Type()))
		}
	})
}

// Apply copies every flag that was set on the command line into cfg.
func Apply(fs *pflag.FlagSet, cfg *Config) error {
	var err error
	walk(reflect.ValueOf(cfg).Elem(), "", func(name, _ string, field reflect.Value) {
		if err != nil || !fs.Changed(name) {
			return
		}
		err = applyFlag(fs, name, field)
	})
	return err
}

func applyFlag(fs *pflag.FlagSet, name string, field reflect.Value) error {
	var v any
	var err error
	switch field.Addr().Interface().(type) {
	case *string:
		v, err = fs.GetString(name)
	case *int:
		v, err = fs.GetInt(name)
	case *float64:
		v, err = fs.GetFloat64(name)
	case *bool:
		v, err = fs.GetBool(name)
	case *time.Duration:
		v, err = fs.GetDuration(name)
	case *[]string:
		v, err = fs.GetStringSlice(name)
	}
	if err != nil {
		return fmt.Errorf("flag --%s: %w", name, err)
	}
	field.Set(reflect.ValueOf(v))
	return nil
}

// walk calls visit for every leaf field of a struct, with its dotted YAML
// name and usage text.
func walk(v reflect.Value, prefix string, visit func(name, usage string, field reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" || key == "-" {
			continue
		}
		name := prefix + strings.ReplaceAll(key, "_", "-")
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			walk(v.Field(i), name+".", visit)
			continue
		}
		visit(name, f.Tag.Get("usage"), v.Field(i))
	}
}

// NormalizeFlagName lets --state_dir mean --state-dir, so a key can be
// copied from the YAML file to the command line as it is.
func NormalizeFlagName(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	return pflag.NormalizedName(strings.ReplaceAll(name, "_", "-"))
}
