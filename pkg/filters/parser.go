package filters

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Parse parses one filter: selectors separated by ',' that must all match.
// An empty (or all blank) filter is Always. A syntax error is
// InvalidArgument and names the input and the 0-based byte position:
//
//	filter "name==": expected value at position 6: invalid argument
//
// The returned Filter (other than Always) has a String method giving its
// canonical form.
func Parse(s string) (Filter, error) {
	if strings.TrimSpace(s) == "" {
		return Always, nil
	}
	p := &parser{input: s}
	var c conjunction
	for {
		sel, err := p.selector()
		if err != nil {
			return nil, err
		}
		c = append(c, sel)
		p.skipSpace()
		if p.eof() {
			return c, nil
		}
		if p.peek() != ',' {
			return nil, p.errorf(p.pos, "expected ',' or end of filter, found %s", p.describe())
		}
		p.pos++
	}
}

// parser reads input left to right; pos is the byte offset of the next
// unread character and is what errors report.
type parser struct {
	input string
	pos   int
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return fmt.Errorf("filter %q: %s at position %d: %w", p.input, fmt.Sprintf(format, args...), pos, errdefs.ErrInvalidArgument)
}

func (p *parser) eof() bool { return p.pos >= len(p.input) }

// peek returns the next byte; callers check eof first.
func (p *parser) peek() byte { return p.input[p.pos] }

func (p *parser) peekRune() (rune, int) { return utf8.DecodeRuneInString(p.input[p.pos:]) }

// describe names what is at pos, for error messages.
func (p *parser) describe() string {
	if p.eof() {
		return "end of filter"
	}
	r, _ := p.peekRune()
	return strconv.QuoteRune(r)
}

func (p *parser) skipSpace() {
	for !p.eof() {
		r, n := p.peekRune()
		if !unicode.IsSpace(r) {
			return
		}
		p.pos += n
	}
}

func (p *parser) selector() (selector, error) {
	p.skipSpace()
	if p.eof() || p.peek() == ',' {
		return selector{}, p.errorf(p.pos, "empty selector")
	}
	path, err := p.fieldpath()
	if err != nil {
		return selector{}, err
	}
	p.skipSpace()
	if p.eof() || p.peek() == ',' {
		return selector{fieldpath: path, op: opPresent}, nil
	}
	op, err := p.operator()
	if err != nil {
		return selector{}, err
	}
	p.skipSpace()
	start := p.pos
	value, err := p.value()
	if err != nil {
		return selector{}, err
	}
	sel := selector{fieldpath: path, op: op, value: value}
	if op == opMatches {
		re, err := regexp.Compile(value)
		if err != nil {
			return selector{}, fmt.Errorf("filter %q: regexp %q at position %d: %w: %w", p.input, value, start, err, errdefs.ErrInvalidArgument)
		}
		sel.re = re
	}
	return sel, nil
}

func (p *parser) fieldpath() ([]string, error) {
	var path []string
	for {
		c, err := p.component()
		if err != nil {
			return nil, err
		}
		path = append(path, c)
		if p.eof() || p.peek() != '.' {
			return path, nil
		}
		p.pos++
	}
}

func (p *parser) component() (string, error) {
	if !p.eof() && p.peek() == '"' {
		return p.quoted()
	}
	start := p.pos
	for !p.eof() {
		r, n := p.peekRune()
		if !isNameRune(r) {
			break
		}
		p.pos += n
	}
	if p.pos == start {
		return "", p.errorf(p.pos, "expected field name, found %s", p.describe())
	}
	return p.input[start:p.pos], nil
}

func (p *parser) operator() (operator, error) {
	if p.pos+1 < len(p.input) && p.input[p.pos+1] == '=' {
		op := opPresent
		switch p.peek() {
		case '=':
			op = opEqual
		case '!':
			op = opNotEqual
		case '~':
			op = opMatches
		}
		if op != opPresent {
			p.pos += 2
			return op, nil
		}
	}
	return opPresent, p.errorf(p.pos, "expected operator ==, != or ~=, found %s", p.describe())
}

func (p *parser) value() (string, error) {
	if p.eof() || p.peek() == ',' {
		return "", p.errorf(p.pos, "expected value")
	}
	switch p.peek() {
	case '"':
		return p.quoted()
	case '|':
		return p.delimited('|')
	case '/':
		// containerd's /regexp/ form, unless it does not close as one: then
		// it is a path like /tasks/exit.
		start := p.pos
		if v, err := p.delimited('/'); err == nil && p.atValueEnd() {
			return v, nil
		}
		p.pos = start
	case '=':
		return "", p.errorf(p.pos, "expected value, found '='")
	}
	return p.bare(), nil
}

// atValueEnd reports whether a value may end at pos.
func (p *parser) atValueEnd() bool {
	if p.eof() || p.peek() == ',' {
		return true
	}
	r, _ := p.peekRune()
	return unicode.IsSpace(r)
}

func (p *parser) bare() string {
	start := p.pos
	for !p.eof() && p.peek() != '"' && !p.atValueEnd() {
		_, n := p.peekRune()
		p.pos += n
	}
	return p.input[start:p.pos]
}

// quoted reads a Go double-quoted string literal starting at pos.
func (p *parser) quoted() (string, error) {
	start := p.pos
	i := start + 1
	for ; i < len(p.input); i++ {
		if p.input[i] == '\\' {
			i++
			continue
		}
		if p.input[i] == '"' {
			break
		}
	}
	if i >= len(p.input) {
		return "", p.errorf(start, "unterminated quoted string")
	}
	s, err := strconv.Unquote(p.input[start : i+1])
	if err != nil {
		return "", p.errorf(start, "invalid quoted string %s", p.input[start:i+1])
	}
	p.pos = i + 1
	return s, nil
}

// delimited reads containerd's |...| or /.../ form starting at pos: a
// backslash before the delimiter escapes it, every other backslash is kept
// with the character after it, so regexp escapes pass through untouched.
func (p *parser) delimited(delim byte) (string, error) {
	start := p.pos
	var b strings.Builder
	for i := start + 1; i < len(p.input); i++ {
		switch c := p.input[i]; {
		case c == delim:
			p.pos = i + 1
			return b.String(), nil
		case c == '\\' && i+1 < len(p.input):
			if p.input[i+1] != delim {
				b.WriteByte('\\')
			}
			b.WriteByte(p.input[i+1])
			i++
		default:
			b.WriteByte(c)
		}
	}
	return "", p.errorf(start, "unterminated %c-quoted value", delim)
}
