fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).unwrap();
        let (clusters, diags) = kelvin_crds::load::load_gpu_clusters(&path, &bytes);
        for d in diags { println!("{d}"); }
        for (c, _) in clusters {
            let nodes = kelvin_crds::model::nodes::simulate(&c.spec);
            let t = std::time::Instant::now();
            let a = kelvin_crds::model::analyze(&c.spec, &nodes);
            println!("{} nodes analyzed in {:?}", nodes.len(), t.elapsed());
            for d in &a.diagnostics { println!("{d}"); }
            println!("{:?}", a.power);
            for z in &a.zones { println!("{z:?}"); }
            for f in &a.fabrics { println!("{f:?}"); }
            for p in &a.pools { println!("{p:?}"); }
        }
    }
}
