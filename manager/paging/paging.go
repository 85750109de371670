// Package paging holds the page request and page result every list call uses.
package paging

// Defaults and bounds for console list calls.
const (
	DefaultNum  = 1
	DefaultSize = 10
	MaxSize     = 500
)

// Page selects one page of a list; Num starts at 1.
type Page struct {
	Num  int
	Size int
}

// Offset is the number of rows before the page.
func (p Page) Offset() int { return (p.Num - 1) * p.Size }

// Pages returns how many pages total rows fill.
func (p Page) Pages(total int) int {
	if p.Size <= 0 {
		return 0
	}
	return (total + p.Size - 1) / p.Size
}
