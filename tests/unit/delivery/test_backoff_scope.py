"""Which 4xx replies speak for a whole domain, and which for one mailbox."""

from newsletter.delivery.relay import about_the_domain


def test_421_and_4_7_x_are_about_the_domain():
    assert about_the_domain(421, "4.4.2") and about_the_domain(421, None)
    assert about_the_domain(451, "4.7.1") and about_the_domain(450, "4.7.0")


def test_a_busy_or_full_mailbox_is_about_its_reader_only():
    assert not about_the_domain(451, "4.2.0") and not about_the_domain(452, "4.2.2")
    assert not about_the_domain(450, None) and not about_the_domain(451, "4.3.0")
