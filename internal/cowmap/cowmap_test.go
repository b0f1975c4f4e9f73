package cowmap

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func TestMap(t *testing.T) {
	var m Map[string, int]
	if _, ok := m.Load("a"); ok {
		t.Fatal("the zero Map has a key")
	}
	m.Range(func(string, int) bool { t.Fatal("Range over the zero Map called f"); return false })
	var made atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				k := fmt.Sprint(j)
				if v := m.LoadOrAdd(k, func() int { made.Add(1); return j }); v != j {
					t.Errorf("goroutine %d: %s = %d, want %d", i, k, v, j)
				}
			}
		}()
	}
	wg.Wait()
	if n := made.Load(); n != 50 {
		t.Fatalf("make ran %d times for 50 keys", n)
	}
	seen := 0
	m.Range(func(k string, v int) bool {
		if k != fmt.Sprint(v) {
			t.Errorf("%s = %d", k, v)
		}
		seen++
		return true
	})
	if seen != 50 {
		t.Fatalf("Range saw %d keys, want 50", seen)
	}
	stopped := 0
	m.Range(func(string, int) bool { stopped++; return false })
	if stopped != 1 {
		t.Fatalf("Range went on %d times after f returned false", stopped)
	}
}
