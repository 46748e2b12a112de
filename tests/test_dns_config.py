"""The system configuration read as glibc 2.36 reads it (connectbyname._dns._config).

Every fixture is a text or a file under tmp_path: the machine's /etc is never read or
written. Row numbers refer to §15 of /work/notes/glibc-resolver.md. The address and
name parsers are also compared with the running glibc through ctypes where it exports
the function.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import platform
import socket
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectbyname._dns import _config
from connectbyname._dns._config import (
    MAXNS,
    TCP_TIMEOUT,
    ConfigLoader,
    ErrorReplyAction,
    HostConf,
    Nameserver,
    NssSource,
    Outcome,
    Paths,
    ReplyVerdict,
    ResolvConf,
    SearchWalk,
    SystemConfig,
    TimeoutAction,
    Unsupported,
    check_name,
    classify_udp_reply,
    inet_aton_exact,
    inet_pton4,
    inet_pton6,
    lookup_hosts,
    next_rotate_offset,
    on_error_reply,
    on_timeout,
    parse_gai_conf,
    parse_host_conf,
    parse_hosts,
    parse_nsswitch,
    parse_resolv_conf,
    question_match_skipped,
    schedule,
    server_timeout,
    tcp_fallback,
)

U, V4, V6 = socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6
BASE_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

GLIBC = platform.libc_ver()[0] == "glibc"
needs_glibc = pytest.mark.skipif(not GLIBC, reason="compares with the running glibc")


# --- Address parsing, compared with glibc -----------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("123", "0.0.0.123"),
        ("0x7f.1", "127.0.0.1"),
        ("010.0.0.1", "8.0.0.1"),  # octal
        ("1.2.65535", "1.2.255.255"),
        ("1.16777215", "1.255.255.255"),
        ("4294967295", "255.255.255.255"),
    ],
)
def test_inet_aton_exact_accepts_the_c_forms(text: str, expected: str) -> None:
    assert inet_aton_exact(text) == socket.inet_aton(expected)


@pytest.mark.parametrize(
    "text",
    ["", "1.2.3.4\r", "1.2.3.4 ", "1.2.3.4.5", "256.1.1.1", "1.2.65536", "08", "0x", "a.b",
     "4294967296", " 1.2.3.4", "1..2", "1.2.3.", "-1"],
)  # fmt: skip
def test_inet_aton_exact_rejects(text: str) -> None:
    assert inet_aton_exact(text) is None


@pytest.mark.parametrize("text", ["127.1", "010.0.0.1", "1.2.3", "1.2.3.4.", "256.0.0.0", ""])
def test_inet_pton4_is_strict(text: str) -> None:
    assert inet_pton4(text) is None
    assert inet_pton4("10.0.0.1") == b"\n\0\0\1"


@pytest.mark.parametrize(
    ("text", "ok"),
    [("::1", True), ("::", True), ("::ffff:1.2.3.4", True), ("1:2:3:4:5:6:7::", True),
     ("1:2:3:4:5:6:7:8::", False), ("fe80::1%lo", False), (":1::", False), ("1::2:", False),
     ("::ffff:01.2.3.4", False), ("12345::", False), ("1:2:3:4:5:6:1.2.3.4", True),
     ("1:2:3:4:5:6:7:1.2.3.4", False), ("", False), ("1::2::3", False)],
)  # fmt: skip
def test_inet_pton6(text: str, ok: bool) -> None:
    assert (inet_pton6(text) is not None) is ok
    if ok:
        assert inet_pton6(text) == socket.inet_pton(socket.AF_INET6, text)


ADDRESS_CHARS = st.text(alphabet="0123456789abcdefxX.: \r%", max_size=24)


@needs_glibc
@settings(max_examples=600, deadline=None)
@given(ADDRESS_CHARS)
def test_address_parsers_match_glibc(text: str) -> None:
    libc = ctypes.CDLL(None)
    buf = ctypes.create_string_buffer(16)
    raw = text.encode()
    exact = libc.__inet_aton_exact(raw, buf)
    assert (inet_aton_exact(text) is not None) == bool(exact)
    if exact:
        assert inet_aton_exact(text) == buf.raw[:4]
    for family, ours in ((socket.AF_INET, inet_pton4), (socket.AF_INET6, inet_pton6)):
        theirs = libc.inet_pton(family, raw, buf)
        assert (ours(text) is not None) == (theirs == 1), (family, text)
        if theirs == 1:
            assert ours(text) == buf.raw[: 4 if family == socket.AF_INET else 16]


# --- check_name (res_hnok, §8, row 54) ---------------------------------------------


@pytest.mark.parametrize(
    ("name", "ok"),
    [("ok.test", True), ("under_score.test", True), ("ok.test.", True), (".", True),
     ("-lead.test", False), ("a.-b.test", True), ("a..b", False), ("sp ace.test", False),
     ("x" * 63 + ".test", True), ("x" * 64 + ".test", False), ("a.b:c", False),
     ("\u00e9.test", False), ("\\065bc.test", True), ("a\\.b", False), ("a\\", False),
     (".a", False), ("..", False), ("a." * 126 + "a", True), ("a." * 127 + "a", False),
     ("a." * 127, True), ("a." * 128, False)],
)  # fmt: skip
def test_check_name(name: str, ok: bool) -> None:
    assert check_name(name) is ok


NAME_CHARS = st.text(alphabet="ab-_.\\0129 *", max_size=80)


@needs_glibc
@settings(max_examples=800, deadline=None)
@given(st.one_of(NAME_CHARS, st.builds(lambda n: "a" * n, st.integers(60, 70))))
def test_check_name_matches_res_hnok(name: str) -> None:
    libc = ctypes.CDLL(None)
    assert check_name(name) == bool(libc.res_hnok(name.encode()))
    buf = ctypes.create_string_buffer(255)
    theirs = libc.ns_name_pton(name.encode(), buf, 255)
    ours = _config._name_pton(name)
    assert (ours is not None) == (theirs >= 0), name
    if ours is not None:
        assert ours == buf.raw[: len(ours)]


# --- /etc/hosts (§2, rows 1-15) ------------------------------------------------------


def hosts(text: str, name: str, family: int, multi: bool = True) -> tuple[str, ...] | None:
    return lookup_hosts(parse_hosts(text), name, family, multi)


def test_row1_and_5_localhost_any_family_in_file_order_and_case_insensitive() -> None:
    # getaddrinfo's RFC 3484 sort (not here) then puts ::1 first.
    assert hosts(BASE_HOSTS, "localhost", U) == ("127.0.0.1", "::1")
    assert hosts(BASE_HOSTS, "LOCALHOST", U) == ("127.0.0.1", "::1")


def test_row2_localhost_ipv4_maps_the_loopback_line() -> None:
    assert hosts(BASE_HOSTS, "localhost", V4) == ("127.0.0.1", "127.0.0.1")


def test_row3_multi_off_first_matching_line_per_family() -> None:
    assert hosts(BASE_HOSTS, "localhost", U, multi=False) == ("127.0.0.1",)
    assert hosts(BASE_HOSTS, "localhost", V4, multi=False) == ("127.0.0.1",)
    assert hosts(BASE_HOSTS, "localhost", V6, multi=False) == ("::1",)


def test_row4_trailing_dot_is_not_normalised() -> None:
    assert hosts(BASE_HOSTS, "localhost.", U) is None


def test_row6_ip6_localhost_as_ipv4() -> None:
    assert hosts(BASE_HOSTS, "ip6-localhost", V4) == ("127.0.0.1",)
    assert hosts(BASE_HOSTS, "ip6-loopback", V6) == ("::1",)


def test_rows7_8_other_family_only_is_notfound() -> None:
    text = BASE_HOSTS + "10.0.0.1 v4only.test v4alias\n"
    assert hosts(text, "v4only.test", V6) is None
    assert hosts(text, "v4alias", V6) is None
    assert hosts(text, "v4alias", U) == ("10.0.0.1",)


def test_row9_every_line_with_leading_spaces_too() -> None:
    text = "10.0.0.1 v4only.test\n   10.0.0.2 v4only.test\n\t10.0.0.3\tv4only.test\n"
    assert hosts(text, "v4only.test", U) == ("10.0.0.1", "10.0.0.2", "10.0.0.3")


def test_row10_dual_lines_each_in_its_family() -> None:
    text = "10.0.0.4 dual.test\n2001:db8::4 dual.test\n"
    assert hosts(text, "dual.test", U) == ("10.0.0.4", "2001:db8::4")
    assert hosts(text, "dual.test", U, multi=False) == ("10.0.0.4",)
    assert hosts(text, "dual.test", V6, multi=False) == ("2001:db8::4",)


def test_row11_duplicates_kept() -> None:
    assert hosts("10.0.0.5 dup.test\n10.0.0.5 dup.test\n", "dup.test", U) == (
        "10.0.0.5",
        "10.0.0.5",
    )


def test_row12_trailing_dot_entry_matches_only_as_written() -> None:
    text = "10.0.0.6 trail.test.\n"
    assert hosts(text, "trail.test", U) is None
    assert hosts(text, "trail.test.", U) == ("10.0.0.6",)


def test_row13_hash_cuts_anywhere() -> None:
    text = "10.0.0.9 hash#inname.test\n10.0.0.10 #hidden\n"
    assert hosts(text, "hash", U) == ("10.0.0.9",)
    assert hosts(text, "hash#inname.test", U) is None
    assert hosts(text, "inname.test", U) is None
    assert hosts(text, "", U) == ("10.0.0.10",)  # only an address: the name is ""


def test_row14_unterminated_indented_last_line_gains_its_tail() -> None:
    text = "127.0.0.1 localhost\n  10.0.0.1 foo"
    assert hosts(text, "foooo", V4) == ("10.0.0.1",)
    assert hosts(text, "foo", V4) is None
    assert hosts(text + "\n", "foo", V4) == ("10.0.0.1",)  # with a newline: harmless


def test_row15_addresses_must_pass_strict_inet_pton() -> None:
    text = "127.1 short.test\n010.0.0.1 octal.test\nfe80::1%lo zone.test\n"
    for name in ("short.test", "octal.test", "zone.test"):
        for family in (U, V4, V6):
            assert hosts(text, name, family) is None


def test_v4_mapped_and_other_ipv6_lines_per_family() -> None:
    text = "::ffff:10.0.0.7 mapped.test\n2001:db8::7 mapped.test\n:: mapped.test\n"
    assert hosts(text, "mapped.test", V4) == ("10.0.0.7",)
    assert hosts(text, "mapped.test", V6) == ("::ffff:10.0.0.7", "2001:db8::7", "::")
    assert hosts(text, "mapped.test", U) == ("::ffff:10.0.0.7", "2001:db8::7", "::")


def test_multi_off_skips_lines_of_another_family() -> None:
    text = "2001:db8::1 x.test\n10.0.0.1 x.test\n10.0.0.2 x.test\n"
    assert hosts(text, "x.test", V4, multi=False) == ("10.0.0.1",)
    assert hosts(text, "x.test", U, multi=False) == ("2001:db8::1",)


def test_aliases_separated_by_any_white_space_and_crlf() -> None:
    text = "10.0.0.1\tcanon.test \x0b alias1\x0calias2  \r\n"
    for name in ("canon.test", "ALIAS1", "alias2"):
        assert hosts(text, name, V4) == ("10.0.0.1",)
    entry = parse_hosts(text).entries[0]
    assert (entry.name, entry.aliases) == ("canon.test", ("alias1", "alias2"))


def test_same_name_twice_on_a_line_counts_once() -> None:
    assert hosts("10.0.0.1 a.test A.TEST a.test\n", "a.test", U) == ("10.0.0.1",)


def test_comment_and_blank_lines_and_nul() -> None:
    text = "# 10.0.0.1 c.test\n   # 10.0.0.2 c.test\n\n \t \n10.0.0.3 c.test\0junk d.test\n"
    assert hosts(text, "c.test", U) == ("10.0.0.3",)
    assert hosts(text, "d.test", U) is None


def test_missing_hosts_file_is_notfound() -> None:
    missing = parse_hosts(None)
    assert not missing.present
    assert lookup_hosts(missing, "localhost", U, True) is None
    assert lookup_hosts(None, "localhost", U, True) is None


def test_search_domain_is_never_applied_to_hosts() -> None:
    assert hosts("10.0.0.1 foo.example.com\n", "foo", U) is None


# --- resolv.conf (§4) ---------------------------------------------------------------


def resolv(text: str | None, env: dict[str, str] | None = None, host: str = "box") -> ResolvConf:
    return parse_resolv_conf(text, env or {}, host, lambda n: {"lo": 1, "eth0": 2}.get(n, 0))


def addresses(conf: ResolvConf) -> list[str]:
    return [ns.address for ns in conf.nameservers]


def test_defaults_without_a_file() -> None:
    conf = resolv(None)
    assert addresses(conf) == ["127.0.0.1"]
    assert (conf.ndots, conf.timeout, conf.attempts, conf.search) == (1, 5, 2, ())
    assert conf.nameservers[0].sockaddr == ("127.0.0.1", 53)
    assert resolv("search a.test\n") == resolv("nameserver x\nsearch a.test\n")  # row 49


def test_only_the_first_three_nameservers_are_used() -> None:
    text = "".join(f"nameserver 10.0.0.{i}\n" for i in range(1, 6))
    assert addresses(resolv(text)) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert MAXNS == 3


def test_nameserver_forms() -> None:
    text = (
        "nameserver 127.1\n"
        "nameserver\t0x7f.2 trailing junk\n"
        "nameserver 10.0.0.9\r\n"  # CRLF: "10.0.0.9\r" fails inet_aton_exact
        "nameserver bogus\n"
        "nameserver ::1\n"
    )
    assert addresses(resolv(text)) == ["127.0.0.1", "127.0.0.2", "::1"]


def test_ipv6_nameserver_scopes() -> None:
    conf = resolv("nameserver fe80::1%eth0\nnameserver fe80::2%nosuch\nnameserver 2001:db8::1%7\n")
    assert [(ns.address, ns.scope_id) for ns in conf.nameservers] == [
        ("fe80::1", 2),
        ("fe80::2", 0),  # unknown scope: ignored, 0
        ("2001:db8::1", 7),
    ]
    assert conf.nameservers[0].sockaddr == ("fe80::1", 53, 0, 2)
    # An interface name only counts for link-local addresses.
    assert resolv("nameserver 2001:db8::1%eth0\n").nameservers[0].scope_id == 0


def test_comments_only_in_column_zero_and_keywords_need_a_blank() -> None:
    text = (
        "#nameserver 10.0.0.1\n"
        ";nameserver 10.0.0.2\n"
        " nameserver 10.0.0.3\n"
        "nameserver 10.0.0.4 # comment after is junk, ignored\n"
        "nameserver\n"
        "nameservers 10.0.0.5\n"
    )
    assert addresses(resolv(text)) == ["10.0.0.4"]


def test_last_search_or_domain_wins() -> None:
    assert resolv("search a b\ndomain c d\n").search == ("c",)
    assert resolv("domain c\nsearch a\tb  \n").search == ("a", "b")
    assert resolv("search a\nsearch \ndomain\t\n").search == ("a",)  # empty lines ignored
    assert resolv("search .a . b\n").search == (".a", ".", "b")
    many = [f"d{i}.test" for i in range(10)]
    assert resolv("search " + " ".join(many) + "\n").search == tuple(many)  # no limit


def test_default_search_from_the_host_name() -> None:
    assert resolv(None, host="box.corp.example").search == ("corp.example",)
    assert resolv(None, host="box").search == ()
    assert resolv(None, host="box.").search == ("",)  # the root
    assert resolv("search x\n", host="box.corp").search == ("x",)


def test_localdomain_replaces_the_search_list() -> None:
    assert resolv("search a b\n", {"LOCALDOMAIN": "c  d"}).search == ("c", "d")
    assert resolv("search a b\n", {"LOCALDOMAIN": ""}).search == ("",)
    assert resolv("domain a\n", {"LOCALDOMAIN": " c"}).search == ("", "c")
    assert resolv(None, {"LOCALDOMAIN": "c\nd e"}, host="h.x").search == ("c",)


def test_options_prefix_matching_and_no_ops() -> None:
    conf = resolv(
        "options rotatexyz edns0 single-request-reopen no_tld_query trust-ad\n"
        "options use-vc no-aaaa inet6 debug no-check-names\n"
    )
    assert conf.rotate
    assert conf.edns0
    assert conf.single_request_reopen
    assert not conf.single_request  # "single-request-reopen" is tried first
    assert conf.no_tld_query
    assert conf.trust_ad
    assert conf.use_vc
    assert conf.no_aaaa
    assert conf.options_seen == {
        "rotate", "edns0", "single-request-reopen", "no-tld-query", "trust-ad", "use-vc",
        "no-aaaa",
    }  # fmt: skip
    assert not resolv("options\n").options_seen
    assert resolv("options single-requestx\n").single_request


@pytest.mark.parametrize(
    ("option", "field", "value"),
    [
        ("ndots:3", "ndots", 3),
        ("ndots:99", "ndots", 15),
        ("ndots:x", "ndots", 0),
        ("ndots:-1", "ndots", 15),  # the 4-bit field wraps [checked with strace]
        ("ndots:-2", "ndots", 14),
        ("ndots:99999999999999999999", "ndots", 15),  # atoi: LONG_MAX as int is -1
        ("ndots: 4", "ndots", 4),  # atoi skips the blank
        ("ndots:2x", "ndots", 2),
        ("timeout:0", "timeout", 0),
        ("timeout:31", "timeout", 30),
        ("timeout:-3", "timeout", -3),
        ("attempts:0", "attempts", 0),
        ("attempts:9", "attempts", 5),
    ],
)
def test_numeric_options(option: str, field: str, value: int) -> None:
    assert getattr(resolv(f"options {option}\n"), field) == value


def test_res_options_applies_after_the_file() -> None:
    conf = resolv("options ndots:3 timeout:2\n", {"RES_OPTIONS": "ndots:1 rotate"})
    assert (conf.ndots, conf.timeout, conf.rotate) == (1, 2, True)
    assert resolv("options rotate\n", {"RES_OPTIONS": ""}).rotate


def test_sortlist_is_flagged() -> None:
    assert resolv("sortlist 10.0.0.0/255.0.0.0\n").sortlist
    assert not resolv("sortlist\n").sortlist  # no blank after the keyword: no match


# --- nsswitch.conf (§12, rows 65-70 are below as Unsupported reasons) ---------------


def test_nsswitch_defaults_and_last_hosts_line_wins() -> None:
    files_dns = (NssSource("files"), NssSource("dns"))
    assert parse_nsswitch(None).hosts == files_dns
    assert parse_nsswitch(None).standard
    assert parse_nsswitch("passwd: files\n").hosts == files_dns
    assert parse_nsswitch("HOSTS: dns\n").hosts == files_dns  # case-sensitive name
    assert parse_nsswitch("hosts: dns\nhosts: files dns\n").standard
    assert parse_nsswitch("  hosts:files\tdns\n").standard
    assert parse_nsswitch("hosts files dns\n").standard  # the colon is optional [E]


def test_nsswitch_unterminated_last_line_is_dropped() -> None:
    # [E] here: "hosts: dns\nhosts: files" without the final newline behaves as dns.
    assert [s.module for s in parse_nsswitch("hosts: dns\nhosts: files").hosts] == ["dns"]
    assert parse_nsswitch("hosts: files").standard


def test_nsswitch_hash_is_not_a_comment_inside_a_line() -> None:
    conf = parse_nsswitch("# hosts: dns\nhosts: files dns # c\n")
    assert [s.module for s in conf.hosts] == ["files", "dns", "#", "c"]


def test_nsswitch_actions() -> None:
    (files, dns) = parse_nsswitch("hosts: files [NOTFOUND=return ] dns [!UNAVAIL=merge]\n").hosts
    assert files.action("notfound") == "return"
    assert files.action("success") == "return"
    assert str(files) == "files [NOTFOUND=return]"
    assert dns.action("unavail") == "continue"  # unchanged: the default for UNAVAIL
    assert dns.action("success") == dns.action("notfound") == "merge"
    (plain,) = parse_nsswitch("hosts: files[success=RETURN]\n").hosts
    assert plain.default_actions


@pytest.mark.parametrize(
    "line",
    ["hosts: files [BOGUS=return] dns", "hosts: files [NOTFOUND=stop]", "hosts: files [",
     "hosts: files [NOTFOUND return]", "hosts: files []", "passwd: files [x=y]"],
)  # fmt: skip
def test_nsswitch_parse_errors_fail_the_whole_file(line: str) -> None:
    conf = parse_nsswitch(f"hosts: files dns\n{line}\n")
    assert conf.error is not None
    assert not conf.standard


def test_nsswitch_bracket_where_a_source_should_be_ends_the_list() -> None:
    assert parse_nsswitch("hosts: [NOTFOUND=return] files\n").hosts == ()
    assert parse_nsswitch("sudoers: files [garbage\n").standard  # unknown databases skipped


# --- host.conf and gai.conf (§3, §11) -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "multi"),
    [(None, False), ("multi on\n", True), ("multi off\n", False), ("MULTI On\n", True),
     ("multi onion\n", True), ("  multi\ton # c\n", True), ("multi on\nmulti off\n", False),
     ("multi\n", False), ("multi of\n", False), ("# multi on\n", False),
     ("order hosts,bind\nmulti on\n", True), ("multi,on\n", False), ("multione on\n", False)],
)  # fmt: skip
def test_host_conf_multi(text: str | None, multi: bool) -> None:
    assert parse_host_conf(text).multi is multi


def test_host_conf_long_lines_are_read_in_255_byte_pieces() -> None:
    assert parse_host_conf("#" + "x" * 254 + "multi on\n").multi  # second piece parsed
    assert not parse_host_conf("#" + "x" * 253 + "multi on\n").multi
    assert parse_host_conf("reorder on\n") == HostConf(multi=False, reorder=True)


def test_gai_conf_directives() -> None:
    debian = "# Configuration for getaddrinfo(3).\n#\n#label ::1/128       0\n#reload yes\n"
    assert parse_gai_conf(debian).directives == ()
    assert parse_gai_conf(None).directives == ()
    text = "  precedence ::ffff:0:0/96 100 # v4 first\nLabel ::1/128 9\nreload no"
    assert parse_gai_conf(text).directives == ("precedence ::ffff:0:0/96 100", "reload no")


# --- The loader: Unsupported reasons, reload, threads ------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str | None) -> None:
    if text is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(text)


@pytest.fixture
def etc(tmp_path: Path) -> Paths:
    (tmp_path / "hosts").write_text(BASE_HOSTS)
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    (tmp_path / "nsswitch.conf").write_text("hosts: files dns\n")
    (tmp_path / "host.conf").write_text("multi on\n")
    (tmp_path / "gai.conf").write_text("# all comments\n")
    return Paths(
        hosts=str(tmp_path / "hosts"),
        resolv_conf=str(tmp_path / "resolv.conf"),
        nsswitch_conf=str(tmp_path / "nsswitch.conf"),
        host_conf=str(tmp_path / "host.conf"),
        gai_conf=str(tmp_path / "gai.conf"),
        nscd_socket=str(tmp_path / "nscd" / "socket"),
    )


def loader(paths: Paths, env: dict[str, str] | None = None, **kwargs: object) -> ConfigLoader:
    environ = env if env is not None else {}
    return ConfigLoader(paths, environ=environ, hostname=lambda: "box", **kwargs)  # type: ignore[arg-type]


def unsupported(paths: Paths, env: dict[str, str] | None = None, **kwargs: object) -> str:
    result = loader(paths, env, **kwargs).get()
    assert isinstance(result, Unsupported), result
    return result.reason


def test_base_configuration_is_supported(etc: Paths) -> None:
    config = loader(etc).get()
    assert isinstance(config, SystemConfig)
    assert config.multi
    assert config.lookup_hosts("localhost", V4) == ("127.0.0.1", "127.0.0.1")
    assert addresses(config.resolv) == ["127.0.0.1"]
    assert config.nsswitch.standard


def test_all_files_missing_is_glibcs_defaults(etc: Paths) -> None:
    for path in (etc.hosts, etc.resolv_conf, etc.nsswitch_conf, etc.host_conf, etc.gai_conf):
        os.unlink(path)
    config = loader(etc).get()
    assert isinstance(config, SystemConfig)
    assert not config.multi
    assert not config.hosts.present
    assert config.lookup_hosts("localhost", U) is None  # row 16: on to DNS
    assert addresses(config.resolv) == ["127.0.0.1"]  # row 49
    assert config.nsswitch.hosts == (NssSource("files"), NssSource("dns"))


@pytest.mark.parametrize(
    ("nsswitch", "expected"),
    [
        ("hosts: files\n", "hosts: files "),  # row 65
        ("hosts: files [NOTFOUND=return] dns\n", "files [NOTFOUND=return] dns"),  # row 65
        ("hosts: dns files\n", "hosts: dns files "),  # row 66: order matters
        ("hosts: files dns # c\n", "unknown modules ['#', 'c']"),  # row 67
        ("hosts: files nosuchmodule\n", "unknown modules ['nosuchmodule']"),  # row 67
        ("hosts: files [BOGUS=return] dns\n", "runs no hosts source"),  # row 68
        ("hosts:\n", "empty hosts line"),  # row 70: glibc segfaults
        ("hosts: files mdns4_minimal [NOTFOUND=return] dns myhostname\n", "mdns4_minimal"),
        ("hosts: files resolve [!UNAVAIL=return] dns\n", "unknown modules ['resolve']"),
        ("hosts: Files dns\n", "unknown modules ['Files']"),
    ],
)
def test_rows_65_to_70_nsswitch_falls_back(etc: Paths, nsswitch: str, expected: str) -> None:
    Path(etc.nsswitch_conf).write_text(nsswitch)
    assert expected in unsupported(etc)


@pytest.mark.parametrize("nsswitch", [None, "passwd: files\n", "HOSTS: dns\n"])
def test_row_69_default_sources(etc: Paths, nsswitch: str | None) -> None:
    write(Path(etc.nsswitch_conf), nsswitch)
    assert isinstance(loader(etc).get(), SystemConfig)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HOSTALIASES", "/tmp/aliases"), ("RESOLV_MULTI", "off"), ("RESOLV_HOST_CONF", "/x"),
     ("RESOLV_REORDER", "on"), ("RESOLV_ADD_TRIM_DOMAINS", "a"),
     ("RESOLV_OVERRIDE_TRIM_DOMAINS", "a")],
)  # fmt: skip
def test_environment_that_falls_back(etc: Paths, variable: str, value: str) -> None:
    assert f"{variable} is set" in unsupported(etc, {variable: value})


def test_localdomain_and_res_options_are_reproduced(etc: Paths) -> None:
    config = loader(etc, {"LOCALDOMAIN": "", "RES_OPTIONS": "ndots:2 attempts:1"}).get()
    assert isinstance(config, SystemConfig)
    assert (config.resolv.search, config.resolv.ndots, config.resolv.attempts) == (("",), 2, 1)
    assert isinstance(loader(etc, {"RESOLVER": "x", "RES_FOO": "y"}).get(), SystemConfig)


def test_host_conf_reorder_and_gai_conf_directives_fall_back(etc: Paths) -> None:
    Path(etc.host_conf).write_text("multi on\nreorder on\n")
    assert "reorder" in unsupported(etc)
    Path(etc.host_conf).write_text("multi on\nreorder off\n")
    Path(etc.gai_conf).write_text("precedence ::ffff:0:0/96 100\n")  # row 64
    assert "gai.conf: 'precedence ::ffff:0:0/96 100'" in unsupported(etc)


def test_nscd_socket_falls_back(etc: Paths) -> None:
    os.mkdir(os.path.dirname(etc.nscd_socket))
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(etc.nscd_socket)
        assert "nscd socket present" in unsupported(etc)


def test_resolv_conf_sortlist_and_refused_options_fall_back(etc: Paths) -> None:
    Path(etc.resolv_conf).write_text("nameserver 127.0.0.1\nsortlist 10.0.0.0\n")
    assert "sortlist" in unsupported(etc)
    Path(etc.resolv_conf).write_text("nameserver 127.0.0.1\noptions use-vc no-aaaa\n")
    assert isinstance(loader(etc).get(), SystemConfig)
    reason = unsupported(etc, refuse_options={"use-vc", "edns0"})
    assert "options use-vc (not implemented)" in reason
    assert "edns0" not in reason
    with pytest.raises(ValueError, match="unknown"):
        loader(etc, refuse_options={"use_vc"})


def test_no_reload_falls_back_for_good(etc: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_config, "CHECK_INTERVAL", 0.0)
    Path(etc.resolv_conf).write_text("options no-reload\n")
    cache = loader(etc)
    assert "no-reload" in str(cache.get())
    Path(etc.resolv_conf).write_text("nameserver 127.0.0.1\noptions rotate\n")
    assert "no-reload" in str(cache.get())


def test_unreadable_configuration_falls_back(etc: Paths) -> None:
    os.unlink(etc.resolv_conf)
    os.mkdir(etc.resolv_conf)
    assert "not a regular file" in unsupported(etc)
    os.rmdir(etc.resolv_conf)
    os.mkfifo(etc.nsswitch_conf + ".fifo")
    fifo = Paths(**{**_fields(etc), "nsswitch_conf": etc.nsswitch_conf + ".fifo"})
    assert "not a regular file" in unsupported(fifo)


def _fields(paths: Paths) -> dict[str, str]:
    return {name: getattr(paths, name) for name in Paths.__dataclass_fields__}


def test_every_reason_is_listed(etc: Paths) -> None:
    Path(etc.nsswitch_conf).write_text("hosts: files\n")
    Path(etc.host_conf).write_text("reorder on\n")
    reasons = loader(etc, {"HOSTALIASES": "x"}).get()
    assert isinstance(reasons, Unsupported)
    assert len(reasons.reasons) == 3


def test_reload_after_a_change_once_the_interval_passed(etc: Paths) -> None:
    clock = Clock()
    cache = loader(etc, clock=clock)
    first = cache.get()
    assert isinstance(first, SystemConfig)
    Path(etc.resolv_conf).write_text("nameserver 10.0.0.53\nsearch changed.test\n")
    Path(etc.hosts).write_text(BASE_HOSTS + "10.0.0.9 new.test\n")
    Path(etc.host_conf).write_text("multi off\n")
    assert cache.get() is first  # within CHECK_INTERVAL: no stat at all
    clock.now += _config.CHECK_INTERVAL
    second = cache.get()
    assert isinstance(second, SystemConfig)
    assert addresses(second.resolv) == ["10.0.0.53"]
    assert second.lookup_hosts("new.test", U) == ("10.0.0.9",)
    assert second.multi  # row 71: host.conf is read once per process
    assert second.resolv_generation == first.resolv_generation + 1
    clock.now += 10
    assert cache.get() is second  # unchanged files: the same snapshot
    assert cache.parses == {"resolv": 2, "hosts": 2, "nsswitch": 1, "once": 1}


def test_nsswitch_change_is_seen(etc: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_config, "CHECK_INTERVAL", 0.0)
    cache = loader(etc)
    assert isinstance(cache.get(), SystemConfig)
    Path(etc.nsswitch_conf).write_text("hosts: dns  files\n")  # sizes differ: see below
    assert isinstance(cache.get(), Unsupported)
    Path(etc.nsswitch_conf).write_text("hosts:   files   dns\n")
    assert isinstance(cache.get(), SystemConfig)


def test_reload_compares_glibcs_stat_fields(etc: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_config, "CHECK_INTERVAL", 0.0)
    cache = loader(etc)
    first = cache.get()
    assert isinstance(first, SystemConfig)
    # Same size, new mtime: reloaded. The same text again: still a new generation.
    Path(etc.resolv_conf).write_text("nameserver 127.0.0.2\n")
    st = os.stat(etc.resolv_conf)
    os.utime(etc.resolv_conf, ns=(st.st_atime_ns, st.st_mtime_ns + 5))
    second = cache.get()
    assert isinstance(second, SystemConfig)
    assert addresses(second.resolv) == ["127.0.0.2"]
    # A missing file and an empty one are the same to glibc: no new resolv generation.
    Path(etc.resolv_conf).write_text("")
    third = cache.get()
    assert isinstance(third, SystemConfig)
    os.unlink(etc.resolv_conf)
    assert cache.get() is third
    # A replacement by rename (new inode) is seen.
    tmp = etc.resolv_conf + ".new"
    Path(tmp).write_text("nameserver 127.0.0.3\n")
    os.rename(tmp, etc.resolv_conf)
    fourth = cache.get()
    assert isinstance(fourth, SystemConfig)
    assert addresses(fourth.resolv) == ["127.0.0.3"]
    assert fourth.resolv_generation == third.resolv_generation + 1


def test_environment_is_read_when_resolv_conf_is_parsed(etc: Paths) -> None:
    env: dict[str, str] = {}
    clock = Clock()
    cache = loader(etc, env, clock=clock)
    assert isinstance(cache.get(), SystemConfig)
    env["RES_OPTIONS"] = "ndots:4"
    clock.now += 5
    config = cache.get()
    assert isinstance(config, SystemConfig)
    assert config.resolv.ndots == 1  # as glibc: only a resolv.conf change re-reads it
    Path(etc.resolv_conf).write_text("nameserver 127.0.0.1\nsearch x\n")
    clock.now += 5
    config = cache.get()
    assert isinstance(config, SystemConfig)
    assert config.resolv.ndots == 4
    env["HOSTALIASES"] = "/x"  # checked at every stat check
    clock.now += 5
    assert isinstance(cache.get(), Unsupported)


def test_load_threads_share_one_snapshot_and_parse_once(etc: Paths) -> None:
    cache = loader(etc)
    barrier = threading.Barrier(16)
    results: list[object] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        for _ in range(200):
            config = cache.get()
            with lock:
                results.append(config)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(result) for result in results}) == 1
    assert cache.parses == {"resolv": 1, "hosts": 1, "nsswitch": 1, "once": 1}


def test_load_threads_during_edits(etc: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_config, "CHECK_INTERVAL", 0.0)
    cache = loader(etc)
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                config = cache.get()
                assert isinstance(config, SystemConfig)
                assert config.resolv.nameservers
        except BaseException as exc:  # pragma: no cover (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for i in range(200):
        tmp = etc.resolv_conf + ".new"
        Path(tmp).write_text(f"nameserver 127.0.0.{i % 200 + 1}\n")
        os.rename(tmp, etc.resolv_conf)
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors
    final = cache.get()
    assert isinstance(final, SystemConfig)
    assert addresses(final.resolv) == ["127.0.0.200"]


def test_module_level_load_caches_per_paths(etc: Paths) -> None:
    first = _config.load(etc)
    assert _config.load(etc) is first


# --- The search walk (§7, rows 38-46, 48, 50) ----------------------------------------


def walk(
    name: str, conf: ResolvConf, outcomes: dict[str, Outcome], default: Outcome = Outcome.NXDOMAIN
) -> tuple[list[str], int]:
    """Run the walk with an outcome per name; (names queried, final EAI code)."""
    machine = SearchWalk(name, conf)
    query = machine.first()
    while query is not None:
        query = machine.next(outcomes.get(query, default))
    return machine.queried, machine.error()


AB = resolv("search a.example b.example\n")
OK = Outcome.SUCCESS


def test_row38_first_search_domain_answers() -> None:
    assert walk("host", AB, {"host.a.example.": OK}) == (["host.a.example."], 0)


def test_row39_dotless_name_searched_then_bare() -> None:
    assert walk("nx", AB, {}) == (
        ["nx.a.example.", "nx.b.example.", "nx."],
        socket.EAI_NONAME,
    )


def test_row40_dotted_name_as_is_first() -> None:
    assert walk("nx.z", AB, {})[0] == ["nx.z.", "nx.z.a.example.", "nx.z.b.example."]
    ndots2 = resolv("search a.example b.example\noptions ndots:2\n")
    assert walk("nx.z", ndots2, {})[0] == ["nx.z.a.example.", "nx.z.b.example.", "nx.z."]


def test_row41_refused_stops_the_search() -> None:
    assert walk("ref", AB, {"ref.a.example.": Outcome.REFUSED}) == (
        ["ref.a.example.", "ref."],
        socket.EAI_NONAME,
    )
    assert walk("t", AB, {"t.a.example.": Outcome.TIMEOUT})[0] == ["t.a.example.", "t."]
    assert walk("f", AB, {"f.a.example.": Outcome.OTHER})[0] == ["f.a.example.", "f."]


def test_row42_servfail_continues_the_search() -> None:
    queried, error = walk("sf", AB, {"sf.a.example.": Outcome.SERVFAIL, "sf.b.example.": OK})
    assert (queried, error) == (["sf.a.example.", "sf.b.example."], 0)
    # SERVFAIL everywhere: EAI_AGAIN (got_servfail), even after a last NXDOMAIN.
    assert walk("sf", AB, {"sf.a.example.": Outcome.SERVFAIL})[1] == socket.EAI_AGAIN
    answer = Outcome.SERVFAIL_ANSWER  # over TCP: the same for the walk
    assert walk("sf", AB, {"sf.a.example.": answer}) == (
        ["sf.a.example.", "sf.b.example.", "sf."],
        socket.EAI_AGAIN,
    )


def test_row43_no_tld_query() -> None:
    conf = resolv("search a.example b.example\noptions no-tld-query\n")
    assert walk("tld", conf, {}) == (["tld.a.example.", "tld.b.example."], socket.EAI_NONAME)
    assert walk("tld.x", conf, {})[0] == ["tld.x.", "tld.x.a.example.", "tld.x.b.example."]
    assert walk("tld", resolv("options no-tld-query\n"), {})[0] == ["tld."]  # not searched


def test_row44_root_in_the_search_list() -> None:
    conf = resolv("search . b.example\n")
    assert walk("host", conf, {})[0] == ["host.", "host.b.example."]
    assert walk("host", resolv("search .b.example\n"), {})[0] == ["host.b.example.", "host."]


@pytest.mark.parametrize(
    ("as_is", "suffix", "error"),
    [
        (Outcome.TIMEOUT, Outcome.NXDOMAIN, socket.EAI_AGAIN),
        (Outcome.NXDOMAIN, Outcome.TIMEOUT, socket.EAI_NONAME),
        (Outcome.NODATA, Outcome.NXDOMAIN, socket.EAI_NODATA),
        (Outcome.NODATA, Outcome.TIMEOUT, socket.EAI_NODATA),
        (Outcome.NODATA, Outcome.SERVFAIL, socket.EAI_NODATA),
        (Outcome.SERVFAIL, Outcome.NXDOMAIN, socket.EAI_AGAIN),
        (Outcome.NXDOMAIN, Outcome.NODATA, socket.EAI_NONAME),
        (Outcome.OTHER, Outcome.NXDOMAIN, socket.EAI_NONAME),
        (Outcome.SERVFAIL_ANSWER, Outcome.NXDOMAIN, socket.EAI_AGAIN),
    ],
)
def test_row45_as_is_then_suffix_errors_af_unspec(
    as_is: Outcome, suffix: Outcome, error: int
) -> None:
    conf = resolv("search sfx\n")
    queried, got = walk("x.t", conf, {"x.t.": as_is, "x.t.sfx.": suffix})
    assert queried == ["x.t.", "x.t.sfx."]
    assert got == error


@pytest.mark.parametrize(
    ("as_is", "suffix", "error"),
    [
        (Outcome.TIMEOUT, Outcome.NXDOMAIN, socket.EAI_NONAME),
        (Outcome.SERVFAIL, Outcome.NXDOMAIN, socket.EAI_NONAME),
        (Outcome.REFUSED, Outcome.NODATA, socket.EAI_NONAME),
        (Outcome.NODATA, Outcome.NXDOMAIN, socket.EAI_NODATA),
        (Outcome.NODATA, Outcome.TIMEOUT, socket.EAI_NODATA),
        (Outcome.NXDOMAIN, Outcome.NXDOMAIN, socket.EAI_NONAME),
        (Outcome.TIMEOUT, Outcome.TIMEOUT, socket.EAI_AGAIN),
        (Outcome.SERVFAIL, Outcome.SERVFAIL, socket.EAI_AGAIN),
        # The caller's errno (non-zero from Python): EAI_NODATA.
        (Outcome.NXDOMAIN, Outcome.TIMEOUT, socket.EAI_NODATA),
        (Outcome.OTHER, Outcome.SERVFAIL, socket.EAI_NODATA),
        # SERVFAIL as the answer (over TCP): a reply came.
        (Outcome.SERVFAIL_ANSWER, Outcome.SERVFAIL_ANSWER, socket.EAI_NONAME),
    ],
)
def test_row46_as_is_then_suffix_errors_af_inet(
    as_is: Outcome, suffix: Outcome, error: int
) -> None:
    """AF_INET goes through gethostbyname2_r, whose status comes from the last query
    sent (§9b): a reply makes it NOTFOUND (EAI_NONAME unless NO_DATA), no reply
    UNAVAIL (EAI_AGAIN for TRY_AGAIN, else the caller's errno)."""
    machine = SearchWalk("x.t", resolv("search sfx\n"))
    outcomes = {"x.t.": as_is, "x.t.sfx.": suffix}
    query = machine.first()
    while query is not None:
        query = machine.next(outcomes[query])
    assert machine.error(socket.AF_INET) == error
    assert machine.error(socket.AF_INET6) == machine.error()


def test_nodata_in_the_search_is_remembered() -> None:
    assert walk("n", AB, {"n.a.example.": Outcome.NODATA})[1] == socket.EAI_NODATA


def test_trailing_dot_is_never_searched() -> None:
    assert walk("host.", AB, {}) == (["host."], socket.EAI_NONAME)
    assert walk("host.", AB, {"host.": Outcome.TIMEOUT})[1] == socket.EAI_AGAIN
    assert walk("a.b.", resolv("search x\noptions ndots:5\n"), {})[0] == ["a.b."]
    assert walk(".", AB, {})[0] == ["."]


def test_case_is_kept() -> None:
    assert walk("V4ONLY.TEST.", AB, {})[0] == ["V4ONLY.TEST."]


def test_connection_refused_ends_the_lookup() -> None:
    refused = Outcome.CONNREFUSED
    assert walk("x", AB, {"x.a.example.": refused}) == (["x.a.example."], socket.EAI_AGAIN)
    # The as-is query does not look at errno; the next search step does. [checked]
    assert walk("a.b", AB, {}, default=refused) == (["a.b.", "a.b.a.example."], socket.EAI_AGAIN)
    # With no search list the bare name is the only query.
    assert walk("x", resolv(None), {}, default=refused) == (["x."], socket.EAI_AGAIN)


def test_row48_attempts_zero_sends_nothing() -> None:
    conf = resolv("options attempts:0\n")
    assert schedule(conf) == []
    # No send at all leaves errno ECONNREFUSED: the resolver reports CONNREFUSED.
    assert walk("ok.test", conf, {}, default=Outcome.CONNREFUSED)[1] == socket.EAI_AGAIN


def test_row50_localdomain_empty_is_the_root_only() -> None:
    conf = resolv("search test\n", {"LOCALDOMAIN": ""})
    assert walk("ok", conf, {}) == (["ok."], socket.EAI_NONAME)


def test_unencodable_candidates_are_not_sent() -> None:
    # "x..dd" cannot be encoded: NO_RECOVERY at once, which stops the search. [checked]
    conf = resolv("search ..dd example\n")
    assert walk("x", conf, {}) == (["x."], socket.EAI_NONAME)
    long_domain = ".".join(["d" * 50] * 5)
    assert walk("host", resolv(f"search {long_domain} ok.test\n"), {})[0] == ["host."]
    # After a refused as-is query, errno is still ECONNREFUSED at the skipped step.
    conf = resolv("search a..b c\noptions ndots:1\n")
    assert walk("x.y", conf, {}, default=Outcome.CONNREFUSED) == (["x.y."], socket.EAI_AGAIN)
    # Nothing at all can be sent.
    lone = SearchWalk("", resolv("search a..b\n"))
    assert lone.first() is None
    assert lone.done
    assert lone.error() == socket.EAI_NONAME


def test_walk_accepts_a_system_config_and_guards_its_protocol(etc: Paths) -> None:
    config = loader(etc).get()
    assert isinstance(config, SystemConfig)
    machine = SearchWalk("x.test", config)
    with pytest.raises(RuntimeError):
        machine.next(Outcome.NXDOMAIN)
    assert machine.first() == "x.test."
    with pytest.raises(RuntimeError):
        machine.first()
    with pytest.raises(RuntimeError):
        machine.error()
    assert machine.next(OK) is None
    assert machine.succeeded
    assert machine.error() == 0


# --- The send schedule (§5, row 33) ---------------------------------------------------


def send_times(sends: list[tuple[int, float]]) -> tuple[list[float], float]:
    times, now = [], 0.0
    for _, wait in sends:
        times.append(now)
        now += wait
    return times, now


def test_row33_timeout2_three_of_four_servers() -> None:
    conf = resolv("".join(f"nameserver 127.0.0.{i}\n" for i in range(1, 5)) + "options timeout:2\n")
    sends = schedule(conf)
    assert [ns for ns, _ in sends] == [0, 1, 2, 0, 1, 2]
    assert [wait for _, wait in sends] == [2, 1, 2, 2, 1, 2]
    times, end = send_times(sends)
    assert times == [0, 2, 3, 5, 7, 8]
    assert end == 10  # EAI_AGAIN at 10 s


@pytest.mark.parametrize(("servers", "total"), [(1, 10), (2, 20), (3, 28)])
def test_default_totals(servers: int, total: int) -> None:
    conf = resolv("".join(f"nameserver 10.0.0.{i}\n" for i in range(1, servers + 1)))
    assert send_times(schedule(conf))[1] == total


def test_server_timeout_has_a_one_second_floor() -> None:
    assert server_timeout(resolv("options timeout:0\n"), 0) == 1
    assert server_timeout(resolv("options timeout:-3\n"), 0) == 1
    conf = resolv("nameserver 1.1.1.1\nnameserver 1.1.1.2\nnameserver 1.1.1.3\noptions timeout:1\n")
    assert [server_timeout(conf, ns) for ns in range(3)] == [1, 1, 1]
    conf30 = resolv(
        "nameserver 1.1.1.1\nnameserver 1.1.1.2\nnameserver 1.1.1.3\noptions timeout:30\n"
    )
    assert [server_timeout(conf30, ns) for ns in range(3)] == [30, 20, 40]


def test_rotate_offset_and_schedule() -> None:
    three = "nameserver 1.1.1.1\nnameserver 1.1.1.2\nnameserver 1.1.1.3\n"
    conf = resolv(three + "options rotate timeout:3\n")
    # The wait belongs to the server's index, not to its place in the round.
    assert schedule(conf, offset=1) == [(1, 2), (2, 4), (0, 3), (1, 2), (2, 4), (0, 3)]
    offsets = [next_rotate_offset(conf) for _ in range(6)]
    assert all(0 <= o < 3 for o in offsets)
    assert all((b - a) % 3 == 1 for a, b in itertools.pairwise(offsets))
    assert next_rotate_offset(resolv(three)) == 0  # no rotate
    assert next_rotate_offset(resolv("options rotate\n")) == 0  # one server


def test_use_vc_is_one_tcp_pass_without_timeout() -> None:
    conf = resolv("nameserver 1.1.1.1\nnameserver 1.1.1.2\noptions use-vc attempts:3\n")
    assert schedule(conf) == [(0, TCP_TIMEOUT), (1, TCP_TIMEOUT)]
    assert schedule(resolv("options use-vc attempts:0\n")) == []


def test_tcp_fallback_asks_the_rest_of_the_pass_only() -> None:
    conf = resolv("nameserver 1.1.1.1\nnameserver 1.1.1.2\nnameserver 1.1.1.3\n")
    sends = schedule(conf)
    assert tcp_fallback(sends, 0, 3) == [0, 1, 2]
    assert tcp_fallback(sends, 1, 3) == [1, 2]
    assert tcp_fallback(sends, 5, 3) == [2]
    rotated = schedule(conf, offset=2)
    assert tcp_fallback(rotated, 4, 3) == [0, 1]


def header(
    rcode: int = 0, *, aa: bool = False, tc: bool = False, ra: bool = True,
    qd: int = 1, an: int = 0, ar: int = 0,
) -> bytes:  # fmt: skip
    flags1 = 0x80 | (0x04 if aa else 0) | (0x02 if tc else 0) | 0x01
    flags2 = (0x80 if ra else 0) | rcode
    counts = b"".join(n.to_bytes(2, "big") for n in (qd, an, 0, ar))
    return b"\x12\x34" + bytes((flags1, flags2)) + counts


def test_classify_udp_reply() -> None:
    assert classify_udp_reply(b"\0" * 11) is ReplyVerdict.SHORT
    for rcode in (2, 4, 5):  # SERVFAIL, NOTIMP, REFUSED
        assert classify_udp_reply(header(rcode)) is ReplyVerdict.ERROR
        assert classify_udp_reply(header(rcode, tc=True)) is ReplyVerdict.ERROR
    assert classify_udp_reply(header(0, ra=False)) is ReplyVerdict.ERROR  # lame (row 18)
    assert classify_udp_reply(header(0, ra=False, aa=True)) is ReplyVerdict.ANSWER
    assert classify_udp_reply(header(0, ra=False, ar=1)) is ReplyVerdict.ANSWER
    assert classify_udp_reply(header(0)) is ReplyVerdict.ANSWER  # NODATA
    assert classify_udp_reply(header(3, ra=False)) is ReplyVerdict.ANSWER  # NXDOMAIN
    assert classify_udp_reply(header(1)) is ReplyVerdict.ANSWER  # FORMERR
    assert classify_udp_reply(header(0, tc=True, an=1)) is ReplyVerdict.TRUNCATED


def test_question_match_skipped_only_for_bare_error_headers() -> None:
    assert question_match_skipped(header(5, qd=0))
    assert question_match_skipped(header(2, qd=0))
    assert not question_match_skipped(header(5, qd=1))
    assert not question_match_skipped(header(3, qd=0))
    assert not question_match_skipped(header(5, qd=0) + b"\0")


def test_error_reply_and_timeout_rules() -> None:
    assert on_error_reply(other_received=True, parallel=True) is ErrorReplyAction.RETURN_OTHER
    assert on_error_reply(other_received=False, parallel=True) is ErrorReplyAction.WAIT_OTHER
    assert on_error_reply(other_received=False, parallel=False) is ErrorReplyAction.NEXT_SERVER
    steps = [
        on_timeout(one_reply=False, single_request=False, single_request_reopen=False),
        on_timeout(one_reply=True, single_request=False, single_request_reopen=False),
        on_timeout(one_reply=True, single_request=True, single_request_reopen=False),
        on_timeout(one_reply=True, single_request=True, single_request_reopen=True),
    ]
    assert steps == [
        TimeoutAction.NEXT_SERVER,
        TimeoutAction.RETRY_SINGLE_REQUEST,
        TimeoutAction.RETRY_SINGLE_REQUEST_REOPEN,
        TimeoutAction.RETURN_ONE,
    ]


def test_nameserver_dataclass_is_frozen() -> None:
    server = Nameserver("10.0.0.1", socket.AF_INET)
    with pytest.raises(AttributeError):
        server.address = "x"  # type: ignore[misc]
