from newsletter.devstack import start_banner


def test_the_start_banner_names_every_address_and_how_to_stop():
    banner = start_banner("http://127.0.0.1:5000", mailbox=True,
                          redis_url="redis://127.0.0.1:6400/0", bounce_port=2525)
    for expected in ("http://127.0.0.1:5000/subscribe", "http://127.0.0.1:5000/admin",
                     "http://127.0.0.1:5000/dev/mail", "smtp://127.0.0.1:2525", "Ctrl-C"):
        assert expected in banner
    own_smtp = start_banner("http://127.0.0.1:5000", mailbox=False,
                            redis_url="redis://x", bounce_port=1)
    assert "/dev/mail" not in own_smtp
