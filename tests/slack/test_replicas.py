"""Two gateways with Slack attached, one bus: every reply is posted once, in order, and a
replica that dies mid-post is taken over."""

from __future__ import annotations

import asyncio

from events.bus import Bus
from tests.slack.conftest import running_gateway
from tests.slack.fake_slack import BOT_USER, FakeSlack


async def test_two_gateways_post_each_reply_once_and_in_order(
    bus: Bus, fake_slack: FakeSlack
) -> None:
    async with (
        running_gateway(bus, fake_slack) as first,
        running_gateway(bus, fake_slack) as second,
    ):
        for i in range(6):
            gateway = (first, second)[i % 2]
            event = {
                "type": "app_mention",
                "user": "U1",
                "text": f"<@{BOT_USER}> count {i}",
                "ts": f"1700000100.{i:06d}",
                "channel": "CREP1",
                "channel_type": "channel",
                "thread_ts": "1700000100.000000",
            }
            assert (await gateway.send_event(event)).status_code == 200
        posted = await fake_slack.wait_for(channel="CREP1", count=6)
        await asyncio.sleep(1.0)  # nothing more comes: the other replica posted nothing twice
        texts = [c.args["text"] for c in fake_slack.posted(channel="CREP1")]
        assert len(texts) == 6 == len(posted), texts
        assert texts == [f"chatbot echo: count {i}" for i in range(6)]


async def test_a_claim_held_by_a_dead_replica_is_taken_over_after_its_lease(bus: Bus) -> None:
    from bots.seen import SeenSet

    dead = await SeenSet.open(bus, 600)
    alive = await SeenSet.open(bus, 600)
    dead.lease_seconds = alive.lease_seconds = 0.5
    assert await dead.begin("post", "r1") == "mine"  # then the replica dies before posting
    assert await alive.begin("post", "r1") == "busy"
    await asyncio.sleep(0.6)
    assert await alive.begin("post", "r1") == "resumed"  # it may have posted: look first
    await alive.finish("post", "r1")
    assert await dead.begin("post", "r1") == "done"
    assert await alive.begin("post", "r1") == "done"


async def test_a_reply_posted_by_a_replica_that_died_before_marking_it_is_not_posted_again(
    bus: Bus, fake_slack: FakeSlack
) -> None:
    """Found by `frontdoor bench chaos`: a gateway killed between posting a reply and marking it
    done left its claim to expire, and the replica taking it over posted the reply again. Each
    post carries the reply's id in its metadata; a taken-over claim looks for it first."""
    from bots.seen import SeenSet
    from bots.tracking import ObservedReply
    from events.envelope import Actor, Conversation, Envelope
    from events.payloads import Reply

    def item(seq: int, text: str) -> ObservedReply:
        reply = Reply(text=text)
        conv = Conversation(channel="slack", id="CREP2", thread="1700000200.000000")
        env = Envelope.new("reply", reply, conversation=conv, actor=Actor(id="slack:U1"))
        return ObservedReply(seq, env, reply)

    async with running_gateway(bus, fake_slack) as gateway:
        dead = await SeenSet.open(bus, 900)  # the gateway's bucket (its dedup TTL)
        dead.lease_seconds = 0.3
        posted, unposted = item(1, "posted, then the replica died"), item(2, "never posted")
        for one in (posted, unposted):
            assert await dead.begin("post", str(one.envelope.id)) == "mine"
        await gateway.channel._post(posted)  # the dead replica's post, not marked done
        await asyncio.sleep(0.4)  # its lease runs out
        await gateway.channel.deliver(posted)
        await gateway.channel.deliver(unposted)
        texts = [c.args["text"] for c in fake_slack.posted(channel="CREP2")]
        assert texts == ["posted, then the replica died", "never posted"]
        for one in (posted, unposted):  # both are done now
            assert await dead.begin("post", str(one.envelope.id)) == "done"


async def test_an_event_whose_gateway_died_before_its_turn_is_taken_on_slacks_retry(
    bus: Bus, fake_slack: FakeSlack
) -> None:
    """Found by `frontdoor bench chaos`: a gateway acknowledged an event and died before its
    turn ran, and the turn was lost (Slack does not resend an acknowledged event). An event is
    now acknowledged once its turn ran; a retry while another gateway holds it is answered 503
    (Slack tries again later), and once that claim's lease is over the retry takes it."""
    from bots.seen import SeenSet

    async with running_gateway(bus, fake_slack) as gateway:
        dead = await SeenSet.open(bus, 900)
        dead.lease_seconds = 0.5
        assert await dead.begin("evt", "EvDIED1") == "mine"  # then that gateway died
        event = {
            "type": "app_mention",
            "user": "U1",
            "text": f"<@{BOT_USER}> still there?",
            "ts": "1700000300.000001",
            "channel": "CREP3",
            "channel_type": "channel",
        }
        first = await gateway.send_event(event, "EvDIED1", extra_headers={"X-Slack-Retry-Num": "1"})
        assert first.status_code == 503  # not acknowledged: Slack delivers it again
        await asyncio.sleep(0.6)
        again = await gateway.send_event(event, "EvDIED1", extra_headers={"X-Slack-Retry-Num": "2"})
        assert again.status_code == 200
        [call] = await fake_slack.wait_for(channel="CREP3")
        assert call.args["text"] == "chatbot echo: still there?"
        late = await gateway.send_event(event, "EvDIED1", extra_headers={"X-Slack-Retry-Num": "3"})
        assert late.status_code == 200  # done: acknowledged, not answered again
        await asyncio.sleep(0.5)
        assert len(fake_slack.posted(channel="CREP3")) == 1
