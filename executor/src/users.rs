//! Name/id lookups from `/etc/passwd` and `/etc/group`, read directly so a static build
//! does not depend on glibc NSS.

#[derive(Debug, Clone, PartialEq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 6 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn passwd() -> Vec<PasswdEntry> {
    parse_passwd(&std::fs::read_to_string("/etc/passwd").unwrap_or_default())
}

fn groups() -> Vec<GroupEntry> {
    parse_group(&std::fs::read_to_string("/etc/group").unwrap_or_default())
}

pub fn user_name(uid: u32) -> String {
    passwd()
        .into_iter()
        .find(|e| e.uid == uid)
        .map_or_else(|| uid.to_string(), |e| e.name)
}

pub fn group_name(gid: u32) -> String {
    groups()
        .into_iter()
        .find(|e| e.gid == gid)
        .map_or_else(|| gid.to_string(), |e| e.name)
}

pub fn uid_by_name(name: &str) -> Option<u32> {
    passwd()
        .into_iter()
        .find(|e| e.name == name)
        .map(|e| e.uid)
        .or_else(|| name.parse().ok())
}

pub fn gid_by_name(name: &str) -> Option<u32> {
    groups()
        .into_iter()
        .find(|e| e.name == name)
        .map(|e| e.gid)
        .or_else(|| name.parse().ok())
}

/// Primary gid and supplementary groups of a uid, when the uid is in the passwd db.
pub fn identity_of(uid: u32) -> Option<(u32, Vec<u32>)> {
    let user = passwd().into_iter().find(|e| e.uid == uid)?;
    let mut supp: Vec<u32> = groups()
        .into_iter()
        .filter(|g| g.members.contains(&user.name))
        .map(|g| g.gid)
        .collect();
    if !supp.contains(&user.gid) {
        supp.push(user.gid);
    }
    Some((user.gid, supp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dbs() {
        let p = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbad\nnobody:x:65534:65534::/nonexistent:/x\n",
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].uid, 65534);
        let g = parse_group("nogroup:x:65534:\nwheel:x:10:a,b\n");
        assert_eq!(g[1].members, vec!["a", "b"]);
        assert!(g[0].members.is_empty());
    }
}
