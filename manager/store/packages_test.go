package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/pkg"
	"github.com/admq/admq-manager/manager/store"
)

func testManifest(version string) manifest.Manifest {
	return manifest.Manifest{
		Name: "zookeeper", Version: version, MqType: 1,
		Components: map[string]manifest.Component{"coordinator": {
			Start:       []string{"{programDir}/bin/zkServer.sh", "start-foreground"},
			ConfigFiles: []manifest.ConfigFile{{Name: "zoo.cfg", Path: "conf/zoo.cfg"}},
			ServerPort:  2181,
			Health:      manifest.Health{TCP: "{managerIp}:2181"},
		}},
	}
}

func mustPackage(tb testing.TB, db *store.DB, name, version, arch string) pkg.Package {
	tb.Helper()
	p := pkg.Package{
		ID: nextID(), Name: name, Version: version, Arch: arch, Ext: "tar.gz",
		FileName: fmt.Sprintf("%s-V%s-%s.tar.gz", name, version, arch),
		SHA256:   fmt.Sprintf("%064x", nextID()), Size: 1234, MqType: 1, Effective: true,
		Manifest: testManifest(version), CreatedAt: base, UpdatedAt: base,
	}
	if err := db.CreatePackage(context.Background(), &p); err != nil {
		tb.Fatalf("CreatePackage(%s): %v", p.FileName, err)
	}
	return p
}

func TestPackages(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	zk := mustPackage(t, db, "admq-zookeeper", "3.8.4", "x86")

	t.Run("read back", func(t *testing.T) {
		for name, get := range map[string]func() (pkg.Package, error){
			"by id":     func() (pkg.Package, error) { return db.Package(ctx, zk.ID) },
			"by sha256": func() (pkg.Package, error) { return db.PackageBySHA256(ctx, zk.SHA256) },
			"by name":   func() (pkg.Package, error) { return db.PackageByName(ctx, "admq-zookeeper", "3.8.4", "x86") },
		} {
			got, err := get()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !reflect.DeepEqual(got, zk) {
				t.Fatalf("%s:\n got %+v\nwant %+v", name, got, zk)
			}
		}
	})
	t.Run("not found", func(t *testing.T) {
		if _, err := db.Package(ctx, 42); !errors.Is(err, pkg.ErrPackageNotFound) {
			t.Errorf("Package(42): %v", err)
		}
		if _, err := db.PackageBySHA256(ctx, strings.Repeat("0", 64)); !errors.Is(err, pkg.ErrPackageNotFound) {
			t.Errorf("PackageBySHA256: %v", err)
		}
		if _, err := db.PackageByName(ctx, "admq-zookeeper", "3.8.4", "arm"); !errors.Is(err, pkg.ErrPackageNotFound) {
			t.Errorf("PackageByName for another arch: %v", err)
		}
		if err := db.SetPackageEffective(ctx, 42, false, base); !errors.Is(err, pkg.ErrPackageNotFound) {
			t.Errorf("SetPackageEffective(42): %v", err)
		}
		if err := db.DeletePackage(ctx, 42); !errors.Is(err, pkg.ErrPackageNotFound) {
			t.Errorf("DeletePackage(42): %v", err)
		}
	})
	t.Run("duplicates", func(t *testing.T) {
		sameSum := zk
		sameSum.ID, sameSum.Name = nextID(), "other"
		sameName := zk
		sameName.ID, sameName.SHA256 = nextID(), strings.Repeat("e", 64)
		for name, p := range map[string]pkg.Package{"same sha256": sameSum, "same name, version and arch": sameName} {
			if err := db.CreatePackage(ctx, &p); !errors.Is(err, pkg.ErrPackageExists) {
				t.Errorf("%s: %v, want ErrPackageExists", name, err)
			}
		}
		// Another arch of the same version is another package.
		mustPackage(t, db, "admq-zookeeper", "3.8.4", "arm")
	})
	t.Run("bad rows are refused by the schema", func(t *testing.T) {
		for name, mod := range map[string]func(*pkg.Package){
			"arch":   func(p *pkg.Package) { p.Arch = "sparc" },
			"digest": func(p *pkg.Package) { p.SHA256 = "abc" },
			"size":   func(p *pkg.Package) { p.Size = 0 },
		} {
			p := pkg.Package{ID: nextID(), Name: "bad-" + name, Version: "1", Arch: "all", Ext: "tar",
				SHA256: fmt.Sprintf("%064x", nextID()), Size: 1}
			mod(&p)
			if err := db.CreatePackage(ctx, &p); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
	})
	t.Run("effective", func(t *testing.T) {
		later := base.Add(time.Hour)
		if err := db.SetPackageEffective(ctx, zk.ID, false, later); err != nil {
			t.Fatal(err)
		}
		got, _ := db.Package(ctx, zk.ID)
		if got.Effective || !got.UpdatedAt.Equal(later) || !got.CreatedAt.Equal(base) {
			t.Fatalf("after disable: effective %v, updated %v, created %v", got.Effective, got.UpdatedAt, got.CreatedAt)
		}
		if err := db.SetPackageEffective(ctx, zk.ID, true, later); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.Package(ctx, zk.ID); !got.Effective {
			t.Fatal("still disabled")
		}
	})
	t.Run("list newest first", func(t *testing.T) {
		for i := range 5 {
			mustPackage(t, db, "broker", fmt.Sprintf("1.%d", i), "all")
		}
		list, total, err := db.Packages(ctx, paging.Page{Num: 1, Size: 3})
		if err != nil {
			t.Fatal(err)
		}
		if total != 7 || len(list) != 3 || list[0].Version != "1.4" || list[2].Version != "1.2" {
			t.Fatalf("page 1: total %d, %d rows, first %s", total, len(list), list[0].Version)
		}
		if !reflect.DeepEqual(list[0].Manifest.ComponentNames(), []string{"coordinator"}) {
			t.Fatalf("manifest not read back: %+v", list[0].Manifest)
		}
		last, _, _ := db.Packages(ctx, paging.Page{Num: 3, Size: 3})
		if len(last) != 1 || last[0].ID != zk.ID {
			t.Fatalf("last page: %+v", last)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := db.DeletePackage(ctx, zk.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Package(ctx, zk.ID); !errors.Is(err, pkg.ErrPackageNotFound) {
			t.Fatalf("after delete: %v", err)
		}
		// Its name and content are free again.
		again := zk
		again.ID = nextID()
		if err := db.CreatePackage(ctx, &again); err != nil {
			t.Fatalf("re-create after delete: %v", err)
		}
	})
}
