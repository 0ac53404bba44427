from newsletter.editors.login_throttle import client_network


def test_ipv6_clients_are_counted_per_64_and_ipv4_per_address():
    assert client_network("2001:db8:1:2:aaaa::1") == client_network("2001:db8:1:2:ffff::9")
    assert client_network("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_network("2001:db8:1:3::1") != client_network("2001:db8:1:2::1")
    assert client_network("192.0.2.1") == "192.0.2.1" != client_network("192.0.2.2")
    assert client_network("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_network(None) == "unknown"
