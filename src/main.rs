fn main() {
    let c = duckdb::Connection::open_in_memory().unwrap();
    for q in ["select json_extract_string('{\"a\":1}', '$.a')", "select extension_name||':'||loaded::varchar from duckdb_extensions() where installed or loaded", "select typeof('{}'::JSON)", "select current_setting('enable_external_access')::varchar"] {
        let mut s = c.prepare(q).unwrap();
        let v: Vec<String> = s.query_map([], |r| r.get(0)).unwrap().map(|x| x.unwrap()).collect();
        println!("{q}: {v:?}");
    }
}
