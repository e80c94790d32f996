"""Generate looplab's sample data: 14 days of a customer-support assistant in production.

    python sample_data/generate.py            # writes sample_data/traces.jsonl.gz
    python sample_data/generate.py --stats    # ... and prints what it wrote

The output is deterministic (fixed seed, fixed reference end time, gzip without a timestamp), so
re-running it gives the same bytes as long as this script and genai-prices' price table are the
same. ``looplab seed`` shifts every timestamp so the history ends at the moment you seed.

The story the data tells (see README.md next to this file):

- Fernhill, an online store for outdoor clothing and home goods, runs "Fern", a support assistant
  with four entry points: ``support-chat`` (multi-turn chat widget), ``faq-answer`` (help-center
  search box), ``order-status`` (order page) and ``refund-request`` (refund form).
- ``v1.4.0`` runs on OpenAI (gpt-4o, gpt-4o-mini). ``v1.5.0`` (day 6) moves chat and refunds to
  claude-sonnet-4-6, FAQ answers to claude-haiku-4-5, and adds a reranker to retrieval: retrieval
  gets ~6x slower and the new order-service client times out, so latency and errors jump.
  ``v1.5.1`` (day 11) fixes both and routes simple chats to claude-haiku-4-5.
- Day 9: a carrier's hub is delayed; "where is my order" traffic surges and many orders are late.
  Day 8, mid-afternoon: an Anthropic rate-limit burst right after the migration.
- About 300 users (a few heavy ones), sessions of 1-5 turns, daily and weekly seasonality,
  ~3% failed traces, p99 latency tails, user thumbs on ~15% of traces (more negative on bad
  answers, errors and slow replies), an LLM judge's helpfulness on a quarter of them, and a few
  human correctness / tone labels and notes from the support team's reviewers.

Everything is made up; any resemblance to real customers or orders is accidental.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from looplab.tracing.pricing import PRICING_SOURCE, cost_usd

SEED = 20261125
TARGET_TRACES = 2000
DAYS = 14
# The history's fixed end in the file (a Wednesday, 16:00 UTC: US and European traffic overlap).
# `looplab seed` moves it to "now".
REFERENCE_END = datetime(2026, 11, 25, 16, 0, tzinfo=timezone.utc)
REFERENCE_START = REFERENCE_END - timedelta(days=DAYS)
OUT = Path(__file__).resolve().parent / "traces.jsonl.gz"
N_USERS = 300

# --- the help center ------------------------------------------------------------------------------

KB: dict[str, tuple[str, str]] = {
    "kb-101": ("Shipping times and costs",
               ("Standard shipping takes 3-5 business days and is free on orders over $75 (otherwise $6.95). "
               "Express shipping takes 1-2 business days and costs $14.95. Orders placed before 1 pm ET ship "
               "the same business day. We do not deliver on Sundays.")),
    "kb-102": ("International shipping",
               ("We ship to Canada, the UK, the EU, Australia and New Zealand. International delivery takes "
               "6-12 business days. Import duties and taxes are collected at checkout for the UK and EU; "
               "for other countries they may be charged by the carrier on delivery.")),
    "kb-103": ("Tracking your order",
               ("You get an email with a tracking link as soon as your order ships. You can also see the "
               "status and tracking number under Account > Orders. Tracking can take up to 24 hours to "
               "show the first scan.")),
    "kb-104": ("Delayed, lost or stolen packages",
               ("If tracking hasn't updated for 5 business days, or your package shows delivered but you "
               "can't find it after 48 hours, contact us: we'll open a claim with the carrier and send a "
               "replacement or a full refund, whichever you prefer.")),
    "kb-105": ("Changing or cancelling an order",
               ("You can change the address or cancel an order within 1 hour of placing it, from Account > "
               "Orders. After it ships we can't change the address, but you can redirect the package with "
               "the carrier using your tracking number.")),
    "kb-201": ("Return policy",
               ("Most items can be returned within 30 days of delivery if unworn and with tags attached. "
               "Sale items marked final sale, gift cards and personalised items can't be returned. "
               "Returns are free for Fernhill+ members; otherwise a $5.95 label fee is deducted.")),
    "kb-202": ("How to start a return",
               ("Go to Account > Orders, choose the order and select Return items. Print the prepaid label "
               "(or show the QR code at a drop-off point) and ship the items within 14 days. No packing "
               "slip is needed: the label identifies your order.")),
    "kb-203": ("Refund timelines",
               ("Refunds go back to the original payment method within 2 business days after your return "
               "reaches our warehouse. Banks then take 3-7 business days to show it. PayPal refunds usually "
               "appear within 24 hours.")),
    "kb-204": ("Exchanges",
               ("To exchange for a different size or colour, start a return and place a new order; we "
               "refund the return as soon as it is scanned, so you don't pay twice for long. Exchanges "
               "for the same item in another size ship free.")),
    "kb-205": ("Damaged or defective items",
               ("If an item arrives damaged or develops a defect within 1 year, send us a photo and your "
               "order number. We'll refund or replace it without asking you to send it back in most cases.")),
    "kb-301": ("Resetting your password",
               ("Use Forgot password on the sign-in page; the reset link is valid for 30 minutes. If the "
               "email doesn't arrive within 5 minutes, check spam and make sure you use the email on your "
               "account. After 5 failed sign-ins the account is locked for 15 minutes.")),
    "kb-302": ("Two-factor authentication",
               ("Turn on two-factor authentication under Account > Security. You can use an authenticator "
               "app or SMS codes. Keep your backup codes somewhere safe: support cannot bypass 2FA for you.")),
    "kb-303": ("Updating your account details",
               ("Change your name, email, saved addresses and communication preferences under Account > "
               "Profile. Changing your email sends a confirmation link to the new address.")),
    "kb-304": ("Deleting your account",
               ("You can request deletion under Account > Privacy > Delete account. We delete your data "
               "within 30 days, except order records we must keep for tax purposes (7 years).")),
    "kb-401": ("Payment methods",
               ("We accept Visa, Mastercard, American Express, PayPal, Apple Pay, Google Pay and Fernhill "
               "gift cards. Update saved cards under Account > Payment methods.")),
    "kb-402": ("Duplicate or pending charges",
               ("When you place an order your bank may show a pending authorisation; it is released within "
               "3-5 business days if the order is cancelled or changed. If you see two completed charges "
               "for one order, contact us with the order number and we'll refund the duplicate.")),
    "kb-403": ("Invoices and receipts",
               ("Download a VAT invoice or receipt under Account > Orders > Invoice. To add a company name "
               "or tax ID, edit your billing details before downloading; invoices can be reissued once.")),
    "kb-404": ("Promo codes and gift cards",
               ("Enter promo codes at checkout; only one code per order, and codes don't apply to sale items "
               "or gift cards. Codes expire on the date in the email. Gift cards never expire.")),
    "kb-501": ("Fernhill+ membership",
               ("Fernhill+ costs $49 a year and includes free express shipping, free returns and early "
               "access to sales. It renews automatically; cancel any time under Account > Membership and "
               "get a prorated refund within the first 30 days.")),
}

# --- what customers ask ---------------------------------------------------------------------------
# Each FAQ topic: how people ask it, the articles that answer it, good answers, and the kind of
# wrong answer a model gives now and then (an outdated policy, a made-up menu, a non-answer).


@dataclass(frozen=True)
class Topic:
    intent: str
    questions: tuple[str, ...]
    kb: tuple[str, ...]
    good: tuple[str, ...]
    bad: tuple[str, ...]


TOPICS: tuple[Topic, ...] = (
    Topic("shipping", (
        "How long does shipping take?",
        "how long will standard delivery take to {state}",
        "If I order today when will it arrive?",
        "What's the difference between standard and express shipping?",
    ), ("kb-101", "kb-103"), (
        ("Standard shipping takes 3-5 business days (free over $75, otherwise $6.95). If you need it sooner, "
        "express takes 1-2 business days for $14.95. Orders placed before 1 pm ET ship the same day."),
        ("Orders placed before 1 pm ET ship the same business day. From there, standard delivery takes 3-5 "
        "business days and express 1-2. You'll get a tracking link by email as soon as it ships."),
    ), (
        "Shipping usually takes about a week.",
        "Standard shipping takes 5-7 business days and express 2-3 business days.",
    )),
    Topic("shipping", (
        "Do you ship to {country}?",
        "can you deliver to {country}? how long does it take",
        "Do I have to pay customs if I order from {country}?",
    ), ("kb-102",), (
        ("Yes, we ship to {country}. International delivery takes 6-12 business days. For the UK and EU, "
        "duties and taxes are included at checkout, so there's nothing extra to pay on delivery."),
        ("We do! Delivery to {country} takes 6-12 business days. Duties and taxes for the UK and EU are "
        "collected at checkout; elsewhere the carrier may charge them on delivery."),
    ), (
        "Unfortunately we only ship within the United States at the moment.",
        "Yes, international shipping is free and takes 3-5 business days.",
    )),
    Topic("shipping", (
        "Is shipping free?",
        "how much do I need to spend for free shipping",
        "Do you deliver on weekends?",
    ), ("kb-101", "kb-501"), (
        ("Standard shipping is free on orders over $75; below that it's $6.95. Fernhill+ members also get free "
        "express shipping. We deliver Monday to Saturday, not on Sundays."),
        ("Orders over $75 ship free with standard delivery (3-5 business days). Deliveries happen Monday to "
        "Saturday. If you order often, Fernhill+ ($49/year) includes free express shipping."),
    ), (
        "Shipping is always free!",
        "Free shipping starts at $50.",
    )),
    Topic("order_change", (
        "Can I change the shipping address on my order?",
        "I put the wrong address on my order, can you fix it?",
        "How do I cancel my order?",
        "can I still cancel? I ordered 20 minutes ago",
    ), ("kb-105", "kb-103"), (
        ("If it's been less than an hour since you ordered, you can change the address or cancel under Account "
        "> Orders. Once the order has shipped we can't change it, but you can redirect the package with the "
        "carrier using your tracking number."),
        ("Within 1 hour of placing the order you can edit the address or cancel it yourself under Account > "
        "Orders. After that the warehouse may already be packing it; once it ships, the carrier can redirect "
        "it using your tracking number."),
    ), (
        "Sure, I've updated the address on your order.",
        "Orders can be cancelled any time before delivery from your account page.",
    )),
    Topic("returns", (
        "What's your return policy?",
        "how many days do I have to return something",
        "Can I return a sale item?",
        "Are returns free?",
    ), ("kb-201", "kb-202"), (
        ("You can return most items within 30 days of delivery if they're unworn with tags attached. Final-sale, "
        "personalised items and gift cards can't be returned. Returns are free for Fernhill+ members; otherwise "
        "$5.95 is deducted for the label."),
        ("Our return window is 30 days from delivery for unworn items with tags. Sale items can be returned "
        "unless they're marked final sale. Start a return under Account > Orders > Return items."),
    ), (
        "You have 60 days to return any item, no questions asked.",
        "Returns are always free and there is no time limit.",
    )),
    Topic("returns", (
        "How do I return an item?",
        "I lost the packing slip, can I still return my order?",
        "how do I send back the {product}",
    ), ("kb-202", "kb-201"), (
        ("Go to Account > Orders, pick the order and choose Return items. You'll get a prepaid label (or a QR "
        "code for drop-off points). No packing slip is needed: the label identifies your order. Please ship "
        "it within 14 days."),
        ("Starting a return takes a minute: Account > Orders > Return items, then print the label or use the "
        "QR code at a drop-off point. You don't need the packing slip."),
    ), (
        "Please email returns@fernhill.example with your order number and we'll send you a label.",
        "You'll need the original packing slip to return an item.",
    )),
    Topic("exchange", (
        "Can I exchange the {product} for a bigger size?",
        "the {product} is too small, can I swap it for a large?",
        "How do exchanges work?",
    ), ("kb-204", "kb-202"), (
        ("The quickest way is to start a return for the {product} and place a new order in the size you need. "
        "We refund the return as soon as the carrier scans it, and exchanges for the same item in another "
        "size ship free."),
        ("Yes: start a return under Account > Orders and order the other size. The refund is issued as soon as "
        "your return is scanned, so you won't be out of pocket for long, and the new size ships free."),
    ), (
        "We don't offer exchanges, only refunds.",
        "Just send the {product} back with a note saying which size you want and we'll ship it.",
    )),
    Topic("refund_timing", (
        "How long do refunds take?",
        "I returned something last week, when do I get my money back?",
        "My refund still isn't showing on my card",
    ), ("kb-203", "kb-202"), (
        ("Once your return reaches our warehouse, we refund it to your original payment method within 2 "
        "business days. Banks usually take another 3-7 business days to show it; PayPal refunds appear "
        "within 24 hours."),
        ("Refunds are issued within 2 business days after the return arrives at our warehouse, then your bank "
        "needs 3-7 business days to post it. If it's been longer than that, send me your order number and "
        "I'll check."),
    ), (
        "Refunds are instant once you drop off the package.",
        "Refunds take up to 30 days to process.",
    )),
    Topic("damaged", (
        "My {product} arrived damaged, what do I do?",
        "the {product} has a {defect}, it's only a month old",
        "item arrived broken",
    ), ("kb-205", "kb-201"), (
        ("I'm sorry about that! Send us a photo of the damage and your order number and we'll refund or replace "
        "the {product}. In most cases you won't need to send it back. Defects are covered for a year."),
        ("Sorry to hear it arrived like that. Reply with a photo and your order number and we'll send a "
        "replacement or a refund, whichever you prefer; usually there's no need to return it."),
    ), (
        "Damaged items must be returned within 14 days in their original packaging.",
        "Unfortunately we can't accept returns for used items.",
    )),
    Topic("account", (
        "I can't log in, it says my password is wrong",
        "The password reset email never arrived",
        "I'm locked out of my account",
        "reset link says expired",
    ), ("kb-301", "kb-302"), (
        ("Use Forgot password on the sign-in page; the link is valid for 30 minutes. If the email doesn't show "
        "up within 5 minutes, check your spam folder and make sure it's the address on your account. After 5 "
        "failed attempts the account locks for 15 minutes, so wait a bit before trying again."),
        ("Sorry you're stuck! Request a new reset link from the sign-in page (links expire after 30 minutes) "
        "and check spam if it doesn't arrive. If you've tried 5 times, the account is locked for 15 minutes."),
    ), (
        "I've reset your password to a temporary one: Fernhill123.",
        "Please tell me your current password so I can check it.",
    )),
    Topic("account", (
        "How do I change the email on my account?",
        "How do I update my address in my profile?",
        "how can I stop the marketing emails",
    ), ("kb-303",), (
        ("Go to Account > Profile: you can change your name, email, saved addresses and email preferences "
        "there. If you change your email, we'll send a confirmation link to the new address."),
        ("All of that lives under Account > Profile. Email changes need a quick confirmation from the new "
        "address; addresses and marketing preferences update immediately."),
    ), (
        "You'll need to contact support by phone to change account details.",
        "Go to Settings > Notifications > Email and toggle off 'All emails'.",
    )),
    Topic("account", (
        "How do I turn on two-factor authentication?",
        "I lost my phone and can't get my 2FA code",
    ), ("kb-302", "kb-301"), (
        ("Turn it on under Account > Security, with an authenticator app or SMS. If you've lost your phone, "
        "use one of your backup codes to sign in; support can't bypass two-factor authentication for you."),
        ("Two-factor authentication is under Account > Security. Without your phone, sign in with a backup "
        "code and then set up your new device."),
    ), (
        "I've turned off two-factor authentication on your account.",
        "We don't support two-factor authentication yet.",
    )),
    Topic("account", (
        "Please delete my account and all my data",
        "how do I close my account",
    ), ("kb-304",), (
        ("You can request deletion under Account > Privacy > Delete account. We delete your data within 30 "
        "days, except order records we're required to keep for tax purposes for 7 years."),
        ("Account > Privacy > Delete account starts it. Everything is removed within 30 days, apart from order "
        "records we must keep for 7 years for tax reasons."),
    ), (
        "Your account has been deleted.",
        "We can't delete accounts, but you can stop using it.",
    )),
    Topic("billing", (
        "Do you accept PayPal?",
        "What payment methods can I use?",
        "How do I update the card on file?",
    ), ("kb-401",), (
        ("We accept Visa, Mastercard, American Express, PayPal, Apple Pay, Google Pay and Fernhill gift cards. "
        "You can update saved cards under Account > Payment methods."),
        ("Yes, PayPal works, as do all major cards, Apple Pay, Google Pay and gift cards. Saved cards are under "
        "Account > Payment methods."),
    ), (
        "We only accept credit cards.",
        "Please send me your new card number and I'll update it for you.",
    )),
    Topic("billing", (
        "There's a pending charge of ${amount} on my card but I cancelled the order",
        "why was I charged if my order was cancelled?",
    ), ("kb-402", "kb-105"), (
        ("That's a pending authorisation, not a completed charge. It's released automatically within 3-5 "
        "business days after a cancellation. If it turns into a completed charge, send me the order number and "
        "I'll get it refunded."),
        ("When you order, your bank places a temporary hold; since the order was cancelled, the hold of "
        "${amount} drops off within 3-5 business days. No money was taken."),
    ), (
        "That charge is for your Fernhill+ membership.",
        "Pending charges can take up to 30 days to disappear.",
    )),
    Topic("invoice", (
        "Can I get an invoice with my company name?",
        "I need a VAT invoice for my order",
        "where do I download a receipt",
    ), ("kb-403",), (
        ("Download it under Account > Orders > Invoice. To add a company name or tax ID, edit your billing "
        "details first; invoices can be reissued once."),
        ("Invoices and receipts are under Account > Orders > Invoice. Add your company name and VAT ID to your "
        "billing details before downloading."),
    ), (
        "We don't provide invoices, only order confirmation emails.",
        "I'll email the invoice to you within 24 hours.",
    )),
    Topic("promo", (
        "My promo code {code} isn't working",
        "why doesn't my discount code work",
        "Do gift cards expire?",
    ), ("kb-404",), (
        ("Only one code works per order, and codes don't apply to sale items or gift cards. Also check the "
        "expiry date in the email: {code} may have expired. Gift cards, on the other hand, never expire."),
        ("Codes like {code} can't be combined with another code and don't cover sale items. If your cart has "
        "only full-price items and it still fails, the code has probably expired."),
    ), (
        "I've applied a 20% discount to your account instead.",
        "That code is valid, please try again later.",
    )),
    Topic("membership", (
        "How do I cancel my Fernhill+ membership?",
        "I got charged $49 for Fernhill+, I don't remember signing up",
        "what do I get with fernhill+",
    ), ("kb-501",), (
        ("Fernhill+ is $49 a year and renews automatically. You can cancel any time under Account > Membership; "
        "within the first 30 days of a renewal you get a prorated refund."),
        ("Fernhill+ gives you free express shipping, free returns and early access to sales for $49 a year. "
        "Cancel under Account > Membership; if you renewed less than 30 days ago, you'll get a prorated refund."),
    ), (
        "Fernhill+ can't be cancelled before the year ends.",
        "I've cancelled your membership and refunded the full $49.",
    )),
)

FOLLOW_UPS_DONE = ("thanks!", "ok thank you", "great, that's all", "Perfect, thanks for the help", "cool 👍",
                   "thx", "Thanks, that answers it.")
FOLLOW_UPS_HUMAN = ("Can I talk to a human?", "this isn't helping. real person please", "I want to speak to an agent",
                    "Can someone from your team call me?")
THANKS_REPLIES = ("You're welcome! Have a great day.", "Happy to help! Let me know if anything else comes up.",
                  "Glad I could help. Enjoy your order!", "Anytime! I'm here if you need anything else.")
HUMAN_REPLIES = (
    ("Of course. I've passed this conversation to our support team; someone will reply by email within 24 hours "
    "(usually much sooner)."),
    ("I've handed this over to a teammate, who will email you within 24 hours with everything we discussed, so "
    "you won't need to repeat yourself."),
)

PRODUCTS = (
    ("FH-MH", "Merino wool hoodie", 89.00), ("FH-TR", "Trailhead running shoes", 129.00),
    ("FH-RJ", "Stormline rain jacket", 159.00), ("FH-PF", "Ceramic pour-over set", 42.00),
    ("FH-DB", "Down-fill duvet", 210.00), ("FH-FL", "Flannel shirt", 54.00),
    ("FH-DP", "Daypack 24L", 79.00), ("FH-WB", "Insulated water bottle", 28.00),
    ("FH-LS", "Linen sheet set", 135.00), ("FH-HB", "Hiking boots", 185.00),
    ("FH-BE", "Wool beanie", 24.00), ("FH-CH", "Camp chair", 65.00),
    ("FH-CO", "Chore coat", 148.00), ("FH-SK", "Hiking socks (3-pack)", 22.00),
    ("FH-LA", "Cast-iron skillet", 48.00), ("FH-TL", "Trail leggings", 68.00),
)
DEFECTS = ("broken zipper", "hole in the seam", "cracked lid", "loose sole", "stain on the front", "bent frame",
           "ripped strap", "chip in the glaze")
COUNTRIES = ("Canada", "the UK", "Germany", "Australia", "Ireland", "New Zealand", "France", "Mexico", "Japan")
STATES = ("California", "Texas", "New York", "Oregon", "Colorado", "Florida", "Illinois", "Washington", "Maine")
CITIES = ("Louisville", "Memphis", "Indianapolis", "Reno", "Allentown", "Ontario, CA")
CARRIERS = ("UPS", "FedEx", "USPS", "DHL")
PROMO_CODES = ("WELCOME10", "SPRING15", "HIKE20", "FRIENDS25", "FALLSALE")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

ORDER_QUESTIONS = (
    "Where is my order {order}?",
    "my order {order} still hasn't arrived. it's been {days} days",
    "Can you check the status of order {order}? I ordered the {product} last week.",
    "tracking for {order} hasn't updated since {weekday}, is it lost?",
    "When will my {product} arrive? Order number {order}",
    "I need the {product} by {weekday} for a trip, will {order} get here in time?",
    "Has my order shipped yet? {order}",
    "It's been over a week. Where is {order}??",
    "my package is stuck in {city} according to {carrier}, what's going on? order {order}",
    "{order} status please",
    "Hi! Just checking on order {order}, the {product}. Any update?",
)
ORDER_QUESTIONS_NO_ID = (
    "Where is my order?", "my package hasn't arrived", "When will my {product} arrive?",
    "I ordered the {product} a week ago and nothing yet",
)
REFUND_QUESTIONS = (
    "I'd like a refund for the {product} from order {order}, it doesn't fit.",
    "The {product} arrived damaged ({defect}). I want my money back. Order {order}.",
    "Please refund order {order}, the {product} isn't what I expected",
    "refund for {product} pls, {defect}. order {order}",
    "Can I get a refund on {order}? Changed my mind about the {product}.",
    "The {product} from order {order} has a {defect} after two days. Refund please.",
)
REFUND_FORM_REASONS = ("doesn't fit", "arrived damaged", "not as described", "changed my mind", "defective",
                       "arrived too late")
REFUND_CONFIRMS = ("yes please", "Yes, go ahead with the refund.", "yes refund it to my card", "ok do it",
                   "Yes please, thank you!")
ORDER_FOLLOW_UPS = (
    ("Can I change the delivery address?", 3), ("what if it doesn't arrive by friday?", 0),
    ("Can you send me the tracking link?", 1),
)

OPENERS = {
    "upset": ("I'm sorry about the trouble. ", "I'm sorry for the wait, I understand how frustrating that is. ",
              "Sorry about that! ", "I completely understand, and I'm sorry. "),
    "neutral": ("", "", "", "Thanks for reaching out! ", "Happy to help. ", "Good question! "),
}

# --- models, releases, tools ----------------------------------------------------------------------

MODELS = {
    # provider, time to first token (median ms), output tokens per second
    "gpt-4o-mini": ("openai", 380, 85),
    "gpt-4o": ("openai", 520, 62),
    "claude-sonnet-4-6": ("anthropic", 850, 58),
    "claude-haiku-4-5": ("anthropic", 430, 115),
}


@dataclass(frozen=True)
class Release:
    name: str
    prompt_version: str
    models: dict[str, tuple[tuple[str, float], ...]]  # trace name -> (model, weight)...
    retrieval_ms: float  # median retrieval latency
    rerank: bool
    tool_timeout_rate: float  # order-service timeouts (the v1.5.0 bug)
    timeout_kills_trace: bool  # v1.5.0 let tool timeouts escape instead of answering gracefully
    quality: tuple[float, float, float]  # share of good, mediocre, bad answers


RELEASES = {
    "v1.4.0": Release("v1.4.0", "support-v7", {
        "support-chat": (("gpt-4o", 1.0),), "faq-answer": (("gpt-4o-mini", 1.0),),
        "order-status": (("gpt-4o-mini", 1.0),), "refund-request": (("gpt-4o", 1.0),),
    }, 95, False, 0.004, False, (0.80, 0.13, 0.07)),
    "v1.5.0": Release("v1.5.0", "support-v8", {
        "support-chat": (("claude-sonnet-4-6", 1.0),), "faq-answer": (("claude-haiku-4-5", 1.0),),
        "order-status": (("gpt-4o-mini", 1.0),), "refund-request": (("claude-sonnet-4-6", 1.0),),
    }, 640, True, 0.10, True, (0.79, 0.12, 0.09)),
    "v1.5.1": Release("v1.5.1", "support-v8.1", {
        "support-chat": (("claude-sonnet-4-6", 0.6), ("claude-haiku-4-5", 0.4)),
        "faq-answer": (("gpt-4o-mini", 1.0),), "order-status": (("claude-haiku-4-5", 1.0),),
        "refund-request": (("claude-sonnet-4-6", 1.0),),
    }, 170, True, 0.004, False, (0.85, 0.10, 0.05)),
}
STAGING_RELEASES = (("v1.5.0-rc.1", "v1.5.0", 3.5, 5.6), ("v1.5.1-rc.1", "v1.5.1", 9.8, 10.6),
                    ("v1.6.0-rc.1", "v1.5.1", 12.5, 14.0))
V150_DAY, V151_DAY = 5.6, 10.6  # production roll-outs (days since the start)
CARRIER_INCIDENT = (8.6, 9.9)  # a carrier hub delay: order-status surge, late orders
RATE_LIMIT_BURST = (7.95, 8.03)  # Anthropic 429s right after the migration took full traffic

SYSTEM_PROMPT = """You are Fern, the customer-support assistant of Fernhill, an online store for outdoor clothing and home goods.
Goal: resolve the customer's question accurately and kindly, in as few messages as possible.
Rules:
- Answer only from the help-center articles below and from tool results. If they don't cover the question, say so and offer to connect the customer with a human agent.
- Never invent order details, tracking numbers, dates or amounts. Use lookup_order for order details; ask for the order number (ORD- followed by 6 digits) if you don't have it.
- Refunds: call create_refund only after lookup_order shows the order is eligible (delivered within the last 30 days, not already refunded) and the customer has asked for it.
- Never ask for card numbers, passwords or one-time codes.
- Keep replies under 120 words, plain text, no headings.{extra}
Today's date: {today}. Customer plan: {plan}."""
PROMPT_EXTRA = {
    "support-v7": "",
    "support-v8": "\n- If the customer is upset, acknowledge it in one short sentence before answering.",
    "support-v8.1": "\n- If the customer is upset, acknowledge it in one short sentence before answering."
                    "\n- Give the tracking number whenever you mention a shipped order.",
}

TOOLS_OPENAI = [
    {"type": "function", "function": {
        "name": "lookup_order", "description": "Look up an order: status, items, carrier, tracking, delivery date.",
        "parameters": {"type": "object", "properties": {
            "order_id": {"type": "string", "description": "Order number, e.g. ORD-184523"}}, "required": ["order_id"]}}},
    {"type": "function", "function": {
        "name": "create_refund", "description": "Refund an eligible order to its original payment method.",
        "parameters": {"type": "object", "properties": {
            "order_id": {"type": "string"}, "amount": {"type": "number"},
            "reason": {"type": "string", "enum": ["damaged", "wrong_size", "not_as_described", "changed_mind", "late"]}},
            "required": ["order_id", "amount", "reason"]}}},
]
TOOLS_ANTHROPIC = [
    {"name": t["function"]["name"], "description": t["function"]["description"], "input_schema": t["function"]["parameters"]}
    for t in TOOLS_OPENAI
]
TOOL_SCHEMA_TOKENS = 212  # what the two tool definitions add to every prompt

REVIEWERS = ("maria.k", "james.o", "priya.s")
JUDGE = {"author": "helpfulness-judge", "metadata": {"judge_model": "gpt-4o", "evaluator_version": "3"}}


# --- helpers --------------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def tokens(text: str) -> int:
    """A tokenizer's count, near enough: English runs at about 4 characters a token."""
    return max(1, math.ceil(len(text) / 3.9))


def relative_day(day: Any, today: Any) -> str:
    """A day as a person says it relative to today. Replies say "in 3 days", never a date: `looplab
    seed` moves the ISO dates in the data to the present, but it does not rewrite prose."""
    delta = (day - today).days
    if delta == 0:
        return "today"
    if delta == 1:
        return "tomorrow"
    if delta == -1:
        return "yesterday"
    return f"in {delta} days" if delta > 0 else f"{-delta} days ago"


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def days_since_start(moment: datetime) -> float:
    return (moment - REFERENCE_START).total_seconds() / 86400


@dataclass
class User:
    id: str
    platform: str
    vip: bool
    beta: bool
    plan: str
    locale: str
    weight: float
    channel: str = "web"
    orders: list[dict[str, Any]] = field(default_factory=list)


class Generator:
    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.users = self._users()
        self.qa_users = [User(f"qa_{name}", "web", False, False, "plus", "en-US", 1.0) for name in
                         ("maria", "james", "priya", "tom", "lena")]
        self.order_counter = 183000
        self.sessions: list[list[dict[str, Any]]] = []

    # --- population ---------------------------------------------------------------------------

    def _users(self) -> list[User]:
        rng = self.rng
        users = []
        for _ in range(N_USERS):
            uid = f"usr_{rng.getrandbits(32):08x}"
            platform = "mobile" if rng.random() < 0.42 else "web"
            users.append(User(
                uid, platform, rng.random() < 0.07, rng.random() < 0.12,
                rng.choices(("free", "plus"), (0.78, 0.22))[0],
                rng.choices(("en-US", "en-GB", "en-CA", "en-AU"), (0.72, 0.14, 0.09, 0.05))[0],
                rng.paretovariate(1.6),  # a few customers write in far more often than the rest
                rng.choice(("ios", "android")) if platform == "mobile" else "web",
            ))
        return users

    def hex_id(self, chars: int) -> str:
        return f"{self.rng.getrandbits(chars * 4):0{chars}x}"

    def new_order(self, user: User, at: datetime, *, old: bool = False) -> dict[str, Any]:
        rng = self.rng
        self.order_counter += rng.randint(3, 40)
        placed = at - timedelta(days=rng.uniform(32, 70) if old else rng.uniform(0.3, 16))
        items = [rng.choice(PRODUCTS) for _ in range(rng.choices((1, 2, 3), (0.6, 0.3, 0.1))[0])]
        subtotal = sum(p for _, _, p in items)
        shipping = 0.0 if subtotal >= 75 or user.plan == "plus" else 6.95
        age = (at - placed).total_seconds() / 86400
        carrier = rng.choice(CARRIERS)
        shipped = placed + timedelta(hours=rng.uniform(3, 30))
        eta = shipped + timedelta(days=rng.randint(3, 5))
        incident = CARRIER_INCIDENT[0] - 1 <= days_since_start(at) <= CARRIER_INCIDENT[1] + 1
        if age < 1.2:
            status = "processing"
        elif at < eta:
            status = "delayed" if (incident and rng.random() < 0.55) or rng.random() < 0.06 else "in_transit"
            if status == "in_transit" and (eta - at).days == 0 and rng.random() < 0.5:
                status = "out_for_delivery"
        else:
            status = "delayed" if incident and rng.random() < 0.3 else "delivered"
        if status == "delayed":
            eta = at + timedelta(days=rng.randint(2, 4))
        order = {
            "order_id": f"ORD-{self.order_counter}",
            "status": status,
            "placed_at": iso(placed),
            "items": [{"sku": f"{sku}-{rng.choice('SMLX')}", "name": name, "qty": 1, "price": price}
                      for sku, name, price in items],
            "total": round(subtotal + shipping, 2),
            "currency": {"en-GB": "GBP", "en-CA": "CAD", "en-AU": "AUD"}.get(user.locale, "USD"),
            "carrier": None if status == "processing" else carrier,
            "tracking_number": None if status == "processing" else self.tracking(carrier),
            "estimated_delivery": eta.date().isoformat(),
            "delivered_at": iso(eta - timedelta(hours=rng.uniform(0, 30))) if status == "delivered" else None,
            "refunded": False,
        }
        if status == "delayed":
            order["carrier_note"] = f"Delay at {rng.choice(CITIES)} hub"
        user.orders.append(order)
        return order

    def tracking(self, carrier: str) -> str:
        rng = self.rng
        if carrier == "UPS":
            return f"1Z{rng.randint(10**15, 10**16 - 1):016d}"[:18]
        if carrier == "USPS":
            return f"9400{rng.randint(10**17, 10**18 - 1)}"
        return f"{rng.randint(10**11, 10**12 - 1)}"

    # --- time -----------------------------------------------------------------------------------

    def intensity(self, moment: datetime) -> float:
        """Relative traffic at a moment: US + European daytime, quieter weekends, slight growth."""
        hour = moment.hour + moment.minute / 60
        daily = 0.12 + 0.55 * math.exp(-((hour - 10.5) / 2.6) ** 2) + 1.0 * math.exp(-((hour - 17.5) / 3.2) ** 2) \
            + 0.45 * math.exp(-((hour - 22.5) / 2.2) ** 2) + 0.45 * math.exp(-((hour + 1.5) / 2.2) ** 2)
        weekly = (1.12, 1.08, 1.04, 1.0, 0.93, 0.62, 0.58)[moment.weekday()]
        day = days_since_start(moment)
        growth = 0.92 + 0.012 * day
        surge = 1.35 if CARRIER_INCIDENT[0] <= day <= CARRIER_INCIDENT[1] else 1.0
        return daily * weekly * growth * surge

    def session_starts(self) -> list[datetime]:
        slots = [REFERENCE_START + timedelta(minutes=10 * i) for i in range(DAYS * 144)]
        weights = [self.intensity(s) for s in slots]
        # Enough sessions for the target (a session averages ~1.6 traces); the extra are dropped.
        picks = self.rng.choices(slots, weights=weights, k=int(TARGET_TRACES / 1.35))
        return sorted(p + timedelta(seconds=self.rng.uniform(0, 600)) for p in picks)

    def release_at(self, moment: datetime, user: User) -> str:
        day = days_since_start(moment)
        early = 0.6 if user.beta else 0.0  # beta users get each release a little earlier
        if day + early >= V151_DAY:
            return "v1.5.1"
        if day + early >= V150_DAY + 0.25:
            return "v1.5.0"
        if day + early >= V150_DAY:  # six hours of canary at 20%
            return "v1.5.0" if self.rng.random() < 0.2 else "v1.4.0"
        return "v1.4.0"

    # --- sessions -------------------------------------------------------------------------------

    def run(self) -> list[dict[str, Any]]:
        rng = self.rng
        users, weights = self.users, [u.weight for u in self.users]
        for start in self.session_starts():
            staging = None
            for name, behaves_like, first, last in STAGING_RELEASES:
                if first <= days_since_start(start) < last and rng.random() < 0.05:
                    staging = (name, behaves_like)
            user = rng.choice(self.qa_users) if staging else rng.choices(users, weights)[0]
            release = staging[1] if staging else self.release_at(start, user)
            self.sessions.append(self.session(start, user, release, staging[0] if staging else release,
                                              "staging" if staging else "production"))
        # Hit the target count exactly by leaving out whole sessions at random (never the last
        # two hours', so the history still runs right up to its end).
        excess = sum(map(len, self.sessions)) - TARGET_TRACES
        assert excess >= 0, "too few sessions for the target: sample more session starts"
        candidates = [i for i, s in enumerate(self.sessions)
                      if s and datetime.fromisoformat(s[0]["start_time"]) < REFERENCE_END - timedelta(hours=2)]
        rng.shuffle(candidates)
        dropped = set()
        for i in candidates:
            if excess == 0:
                break
            if len(self.sessions[i]) <= excess:
                dropped.add(i)
                excess -= len(self.sessions[i])
        assert excess == 0
        traces = [t for i, s in enumerate(self.sessions) if i not in dropped for t in s]
        traces.sort(key=lambda t: (t["start_time"], t["trace_id"]))
        return traces

    def session(self, start: datetime, user: User, release: str, release_label: str,
                environment: str) -> list[dict[str, Any]]:
        """One conversation: 1-5 turns (traces) of a user, each a little after the previous one ended."""
        rng = self.rng
        day = days_since_start(start)
        surge = CARRIER_INCIDENT[0] <= day <= CARRIER_INCIDENT[1]
        name = rng.choices(("support-chat", "faq-answer", "order-status", "refund-request"),
                           (0.46, 0.25, 0.28 if surge else 0.17, 0.12))[0]
        turns = 1 if name != "support-chat" else rng.choices((1, 2, 3, 4, 5), (0.42, 0.28, 0.16, 0.09, 0.05))[0]
        session_id = f"sess_{self.hex_id(12)}"
        history: list[tuple[str, str]] = []
        state: dict[str, Any] = {}
        at = start
        traces: list[dict[str, Any]] = []
        for turn in range(1, turns + 1):
            if at > REFERENCE_END - timedelta(seconds=90):
                break  # the rest of this conversation happens after the history ends
            trace = self.turn(at, user, name, turn, history, state, release, release_label, environment, session_id)
            if trace is None:
                break
            traces.append(trace)
            if trace["status"] == "error" and rng.random() < 0.6:
                break  # most people give up after an error
            at = datetime.fromisoformat(trace["end_time"]) + timedelta(seconds=lognormal(rng, 45, 0.8))
        return traces

    def pick_intent(self, name: str, day: float) -> str:
        rng = self.rng
        if name == "order-status":
            return "order_status"
        if name == "refund-request":
            return "refund_form"
        surge = CARRIER_INCIDENT[0] <= day <= CARRIER_INCIDENT[1]
        if name == "faq-answer":
            return "faq"
        return rng.choices(("order_status", "refund", "faq"), (0.36 if surge else 0.24, 0.13, 0.63))[0]

    # --- one turn = one trace -------------------------------------------------------------------

    def turn(self, at: datetime, user: User, name: str, turn: int, history: list[tuple[str, str]],
             state: dict[str, Any], release_name: str, release_label: str, environment: str,
             session_id: str) -> dict[str, Any] | None:
        rng = self.rng
        release = RELEASES[release_name]
        day = days_since_start(at)
        models, model_weights = zip(*release.models[name])
        model = rng.choices(models, model_weights)[0]
        quality = rng.choices(("good", "mediocre", "bad"), release.quality)[0]
        if model == "claude-haiku-4-5" and quality == "good" and rng.random() < 0.04:
            quality = "mediocre"
        tb = TraceBuilder(self, at, name, model, release, environment)

        # What the customer says this turn, and what the assistant has to do about it.
        plan: dict[str, Any]
        if turn == 1:
            plan = self.first_message(name, user, at, day)
        else:
            plan = self.follow_up(user, at, state)
            if plan is None:
                return None
        message = plan["message"]
        plan["at"] = iso(at)
        upset = plan.get("upset", False) or any(w in message.lower() for w in ("??", "ridiculous", "still", "lost",
                                                                                    "damaged", "broken", "human"))
        docs = tb.retrieval(message, plan.get("kb") or ())
        system = SYSTEM_PROMPT.format(extra=PROMPT_EXTRA[release.prompt_version], today=at.date().isoformat(),
                                      plan="Fernhill+" if user.plan == "plus" else "standard")
        system += "\n\nHelp-center articles:\n" + "\n".join(f"[{d['id']}] {d['title']}: {d['text']}" for d in docs)
        messages = tb.messages(system, history, message)
        opener = rng.choice(OPENERS["upset" if upset else "neutral"])
        reply: str | None = None

        if plan["kind"] == "faq":
            reply = self.faq_reply(plan, quality, opener)
            reply = tb.llm(messages, reply=reply, stream=True)
        elif plan["kind"] == "thanks":
            reply = tb.llm(messages, reply=rng.choice(THANKS_REPLIES), stream=True)
        elif plan["kind"] == "human":
            reply = tb.llm(messages, reply=rng.choice(HUMAN_REPLIES), stream=True)
            state["escalated"] = True
        elif plan["kind"] == "ask_order_id":
            reply = tb.llm(messages, reply=opener + rng.choice((
                "Could you share your order number? It starts with ORD- and is in your confirmation email.",
                "I can look that up for you. What's the order number (ORD- followed by 6 digits)?",
            )), stream=True)
            state["awaiting_order"] = plan.get("order")
        elif plan["kind"] in ("order", "refund", "refund_form"):
            order = plan["order"]
            found = plan.get("found", True)
            call = tb.llm(messages, tool_call=("lookup_order", {"order_id": order["order_id"]}))
            if call is not None:
                result = {k: v for k, v in order.items() if k != "refunded"} if found else \
                    {"found": False, "order_id": order["order_id"]}
                tool = tb.tool("lookup_order", {"order_id": order["order_id"]}, result, kind_ms=130)
                if tool is not None:
                    state["order"] = order
                    eligible = found and self.refund_eligible(order, at)
                    refund = None
                    if plan["kind"] == "refund_form" and eligible:
                        refund = tb.tool("create_refund", self.refund_input(order, plan), self.refund_output(order, at),
                                         kind_ms=380, error_rate=0.03)
                        if refund is not None:
                            order["refunded"] = True
                    elif plan["kind"] == "refund" and eligible:
                        state["refund_offer"] = order
                    if plan["kind"] == "refund_form" and eligible and refund is None and not tb.failed:
                        text = opener + "I checked your order, but our payment system didn't accept the refund just " \
                            "now. I've flagged it for our billing team, who will process it within 1 business day and " \
                            "email you when it's done."
                    else:
                        text = self.order_reply(plan, order, found, eligible, refund, quality, opener, release)
                    messages = tb.with_tool_result(messages, call, tool)
                    reply = tb.llm(messages, reply=text, stream=True)
                elif not tb.failed:  # the tool failed; the assistant apologises instead
                    messages = tb.with_tool_result(messages, call, None)
                    reply = tb.llm(messages, reply=opener + rng.choice((
                        ("I can't reach our order system right now. Please try again in a few minutes, or I can have "
                        "a teammate email you an update within 24 hours."),
                        "Sorry, I'm having trouble looking up orders at the moment. Could you try again shortly?",
                    )), stream=True)
                    quality = "mediocre"
        elif plan["kind"] == "refund_confirm":
            order = plan["order"]
            call = tb.llm(messages, tool_call=("create_refund", self.refund_input(order, plan)))
            if call is not None:
                refund = tb.tool("create_refund", self.refund_input(order, plan), self.refund_output(order, at),
                                 kind_ms=380, error_rate=0.03)
                if refund is not None:
                    order["refunded"] = True
                    text = rng.choice((
                        ("Done! I've refunded {amount} {cur} to your original payment method (refund {rid}). It "
                        "should show on your statement within 3-7 business days."),
                        ("All set: refund {rid} for {amount} {cur} is on its way to your original payment method. "
                        "Banks usually take 3-7 business days to show it."),
                    )).format(amount=f"{refund['amount']:.2f}", cur=refund["currency"], rid=refund["refund_id"])
                    if quality == "bad":
                        text = f"Done! Your refund of {order['total']:.2f} has been issued and will appear within 24 hours."
                elif not tb.failed:
                    text = "I'm sorry, the refund didn't go through on our side. I've passed it to our billing team, " \
                        "who will process it within 1 business day and email you a confirmation."
                    quality = "mediocre"
                if not tb.failed:
                    messages = tb.with_tool_result(messages, call, refund)
                    reply = tb.llm(messages, reply=text, stream=True)
            state.pop("refund_offer", None)

        trace = tb.finish(
            user=user, session_id=session_id, release_label=release_label, turn=turn,
            trace_input=plan.get("input") or {"message": message}, reply=reply, intent=plan["intent"],
            tags=self.tags(user), quality=quality,
        )
        if reply is not None:
            history.append((message, reply))
        state["last_kind"] = plan["kind"]
        state["last_quality"] = quality if trace["status"] == "ok" else "error"
        self.scores(trace, user, quality, upset)
        return trace

    def tags(self, user: User) -> list[str]:
        tags = [user.platform]
        if user.vip:
            tags.append("vip")
        if user.beta:
            tags.append("beta")
        return tags

    # --- what the customer writes ---------------------------------------------------------------

    def fill(self, template: str, **known: Any) -> str:
        rng = self.rng
        values = {
            "state": rng.choice(STATES), "country": rng.choice(COUNTRIES), "product": rng.choice(PRODUCTS)[1].lower(),
            "defect": rng.choice(DEFECTS), "code": rng.choice(PROMO_CODES), "amount": f"{rng.randint(25, 260)}.00",
            "weekday": rng.choice(WEEKDAYS), "days": rng.randint(6, 14), "city": rng.choice(CITIES),
            "carrier": rng.choice(CARRIERS),
        }
        values.update(known)
        return template.format(**values)

    def casual(self, text: str) -> str:
        """People type differently: lower case, greetings, thanks, the odd missing question mark."""
        rng = self.rng
        if rng.random() < 0.22:
            text = text[0].lower() + text[1:]
            text = text.rstrip("?.!") if rng.random() < 0.6 else text
        if rng.random() < 0.14:
            text = rng.choice(("hi, ", "Hello! ", "hey ", "Hi there, ")) + text[0].lower() + text[1:]
        if rng.random() < 0.07:
            text += rng.choice((" thanks", " thx", " Thank you!", " 🙏"))
        return text

    def first_message(self, name: str, user: User, at: datetime, day: float) -> dict[str, Any]:
        rng = self.rng
        intent = self.pick_intent(name, day)
        if intent == "faq":
            topic = rng.choice(TOPICS)
            slots = {"product": rng.choice(PRODUCTS)[1].lower(), "country": rng.choice(COUNTRIES),
                     "code": rng.choice(PROMO_CODES), "amount": f"{rng.randint(25, 260)}.00"}
            question = self.fill(rng.choice(topic.questions), **slots)
            return {"kind": "faq", "intent": topic.intent, "topic": topic, "slots": slots,
                    "message": self.casual(question), "kb": topic.kb}
        order = self.new_order(user, at, old=intent in ("refund", "refund_form") and rng.random() < 0.12)
        product = order["items"][0]["name"].lower()
        if intent == "order_status":
            if name == "support-chat" and rng.random() < 0.15:
                message = self.fill(rng.choice(ORDER_QUESTIONS_NO_ID), product=product)
                return {"kind": "ask_order_id", "intent": "order_status", "message": self.casual(message),
                        "order": order, "kb": ("kb-103", "kb-104")}
            found = rng.random() > 0.04
            if not found:
                order = {**order, "order_id": f"ORD-{rng.randint(100000, 999999)}"}
            message = self.fill(rng.choice(ORDER_QUESTIONS), order=order["order_id"], product=product,
                                carrier=order["carrier"] or rng.choice(CARRIERS))
            if name == "order-status":  # the order page's "Ask about this order" box
                message = rng.choice((message, f"Where is my order {order['order_id']}?",
                                      "When will this arrive?", "is it still on time?", "tracking hasn't moved"))
                inputs = {"message": self.casual(message), "order_id": order["order_id"]}
                return {"kind": "order", "intent": "order_status", "message": inputs["message"], "order": order,
                        "found": found, "input": inputs, "kb": ("kb-103", "kb-104", "kb-101")}
            return {"kind": "order", "intent": "order_status", "message": self.casual(message), "order": order,
                    "found": found, "kb": ("kb-103", "kb-104", "kb-101")}
        defect = rng.choice(DEFECTS)
        if intent == "refund_form":
            reason = rng.choice(REFUND_FORM_REASONS)
            details = rng.choice(("", "", f"The {product} has a {defect}.", "Please refund to my card.",
                                  f"Ordered the wrong size of the {product}.", "It took too long to arrive."))
            inputs = {"order_id": order["order_id"], "reason": reason, "details": details}
            message = f"Refund request for order {order['order_id']}: {reason}." + (f" {details}" if details else "")
            return {"kind": "refund_form", "intent": "refund", "message": message, "order": order, "reason": reason,
                    "input": inputs, "kb": ("kb-201", "kb-203", "kb-205")}
        message = self.fill(rng.choice(REFUND_QUESTIONS), order=order["order_id"], product=product, defect=defect)
        return {"kind": "refund", "intent": "refund", "message": self.casual(message), "order": order,
                "reason": "damaged" if defect in message else "wrong_size", "kb": ("kb-201", "kb-203", "kb-205")}

    def follow_up(self, user: User, at: datetime, state: dict[str, Any]) -> dict[str, Any] | None:
        rng = self.rng
        if state.get("escalated"):
            return None
        if state.get("awaiting_order") is not None:
            order = state.pop("awaiting_order")
            return {"kind": "order", "intent": "order_status", "order": order, "found": True,
                    "message": rng.choice(("{o}", "it's {o}", "Order number is {o}", "{o} thanks")).format(
                        o=order["order_id"]), "kb": ("kb-103", "kb-104")}
        if state.get("refund_offer") is not None and rng.random() < 0.8:
            order = state["refund_offer"]
            return {"kind": "refund_confirm", "intent": "refund", "order": order, "reason": "changed_mind",
                    "message": rng.choice(REFUND_CONFIRMS), "kb": ("kb-203",)}
        unhappy = state.get("last_quality") in ("bad", "error")
        weights = (0.25, 0.35 if unhappy else 0.07, 0.45, 0.23 if state.get("order") else 0.0)
        choice = rng.choices(("thanks", "human", "faq", "order_follow_up"), weights)[0]
        if choice == "thanks":
            return {"kind": "thanks", "intent": "thanks", "message": rng.choice(FOLLOW_UPS_DONE)}
        if choice == "human":
            return {"kind": "human", "intent": "escalation", "message": rng.choice(FOLLOW_UPS_HUMAN), "upset": True}
        if choice == "order_follow_up":
            question, topic_index = rng.choice(ORDER_FOLLOW_UPS)
            topic = TOPICS[topic_index]
            if question.startswith("Can you send me the tracking"):
                order = state["order"]
                if order.get("tracking_number"):
                    return {"kind": "faq", "intent": "order_status", "message": question, "kb": ("kb-103",),
                            "reply": f"Here it is: {order['carrier']} tracking number {order['tracking_number']}. "
                                     f"You can also find it under Account > Orders."}
                return {"kind": "faq", "intent": "order_status", "message": question, "kb": ("kb-103",),
                        "reply": "It hasn't shipped yet, so there's no tracking number. You'll get it by email "
                                 "as soon as it leaves our warehouse, usually within 1-2 business days."}
            if "friday" in question:
                return {"kind": "faq", "intent": "order_status", "message": question, "kb": ("kb-104",),
                        "reply": "If tracking hasn't moved for 5 business days, or it hasn't arrived, let us know: "
                                 "we'll open a claim with the carrier and send a replacement or a full refund, "
                                 "whichever you prefer."}
            return {"kind": "faq", "intent": topic.intent, "topic": topic, "slots": {}, "message": question,
                    "kb": topic.kb}
        topic = rng.choice(TOPICS)
        slots = {"product": rng.choice(PRODUCTS)[1].lower(), "country": rng.choice(COUNTRIES),
                 "code": rng.choice(PROMO_CODES), "amount": f"{rng.randint(25, 260)}.00"}
        question = self.fill(rng.choice(topic.questions), **slots)
        prefix = rng.choice(("", "", "one more thing: ", "Also, ", "and "))
        return {"kind": "faq", "intent": topic.intent, "topic": topic, "slots": slots,
                "message": prefix + (question[0].lower() + question[1:] if prefix else question), "kb": topic.kb}

    # --- what the assistant answers ---------------------------------------------------------------

    def faq_reply(self, plan: dict[str, Any], quality: str, opener: str) -> str:
        rng = self.rng
        if "reply" in plan:
            return plan["reply"] if quality != "bad" else "I'm not sure about that. Please check our help center."
        topic: Topic = plan["topic"]
        slots = {"product": "item", "country": "your country", "code": "your code", "amount": "the"}
        slots.update({k: v for k, v in plan["slots"].items()})
        if quality == "bad":
            text = rng.choice(topic.bad + ("I'm sorry, I can't help with that. Please contact our support team.",))
            return text.format(**slots)
        text = rng.choice(topic.good).format(**slots)
        if quality == "mediocre":
            # Right, but padded and generic: the kind of answer people rate "meh".
            text = rng.choice((
                "Thank you for contacting Fernhill customer support. I understand you have a question. ",
                "Great question! There are a few things to keep in mind here. ",
            )) + text + " " + rng.choice((
                "Please let me know if there's anything else I can assist you with today, and have a wonderful day!",
                "You can also find more information in our help center. Is there anything else I can help with?",
            ))
            return text
        return opener + text

    def refund_eligible(self, order: dict[str, Any], at: datetime) -> bool:
        if order["refunded"] or order["status"] != "delivered":
            return order["status"] == "delayed" and not order["refunded"]  # late orders can be refunded
        delivered = datetime.fromisoformat(order["delivered_at"])
        return (at - delivered).days <= 30

    def refund_input(self, order: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
        reason = {"doesn't fit": "wrong_size", "arrived damaged": "damaged", "defective": "damaged",
                  "not as described": "not_as_described", "changed my mind": "changed_mind",
                  "arrived too late": "late"}.get(plan.get("reason", ""), plan.get("reason") or "changed_mind")
        return {"order_id": order["order_id"], "amount": order["total"], "reason": reason}

    def refund_output(self, order: dict[str, Any], at: datetime) -> dict[str, Any]:
        return {"refund_id": f"RF-{self.rng.randint(100000, 999999)}", "status": "pending", "amount": order["total"],
                "currency": order["currency"], "method": "original_payment",
                "expected_by": (at + timedelta(days=7)).date().isoformat()}

    def order_reply(self, plan: dict[str, Any], order: dict[str, Any], found: bool, eligible: bool,
                    refund: dict[str, Any] | None, quality: str, opener: str, release: Release) -> str:
        rng = self.rng
        oid = order["order_id"]
        if not found:
            return opener + rng.choice((
                (f"I couldn't find an order with the number {oid}. Could you double-check it? It's in your "
                "confirmation email and starts with ORD-."),
                (f"Hmm, {oid} doesn't match any order I can see. Is it possible there's a typo? You'll find the "
                "number in your confirmation email or under Account > Orders."),
            ))
        item = order["items"][0]["name"]
        items = item if len(order["items"]) == 1 else f"{item} and {len(order['items']) - 1} more item" + \
            ("s" if len(order["items"]) > 2 else "")
        now = datetime.fromisoformat(plan.get("at") or order["placed_at"])
        eta = relative_day(datetime.fromisoformat(order["estimated_delivery"]).date(), now.date())
        carrier, tn = order["carrier"], order["tracking_number"]
        if plan["kind"] in ("refund", "refund_form"):
            if refund is not None:
                return opener + rng.choice((
                    ("I've refunded {amount} {cur} for order {oid} to your original payment method (refund {rid}). "
                    "You should see it within 3-7 business days."),
                    ("Your refund {rid} of {amount} {cur} for order {oid} has been issued. Banks usually take 3-7 "
                    "business days to show it."),
                )).format(amount=f"{refund['amount']:.2f}", cur=refund["currency"], rid=refund["refund_id"], oid=oid)
            if eligible:
                if quality == "bad":
                    return f"Order {oid} isn't eligible for a refund because it was delivered more than 14 days ago."
                return opener + rng.choice((
                    ("Order {oid} ({items}) is eligible for a refund of {total:.2f} {cur} to your original payment "
                    "method. Would you like me to go ahead?"),
                    "I can refund order {oid} in full ({total:.2f} {cur}) to the card you paid with. Shall I process it?",
                )).format(oid=oid, items=items, total=order["total"], cur=order["currency"])
            if order["status"] in ("processing", "in_transit", "out_for_delivery"):
                return opener + (f"Order {oid} hasn't been delivered yet, so it can't be refunded right now. Once it "
                                 "arrives you have 30 days to return it, or you can cancel within 1 hour of ordering.")
            if quality == "bad":
                return f"Sure, I've issued a full refund for order {oid}."
            return opener + (f"Order {oid} was delivered more than 30 days ago, so it's outside our return window. "
                             "If the item is defective, it's covered for a year: send us a photo and we'll "
                             "replace or refund it.")
        status = order["status"]
        if quality == "bad":
            return rng.choice((
                f"Your order {oid} has been delivered. Please check with your neighbours.",
                f"Order {oid} will arrive tomorrow.",
                "I'm unable to access order information. Please contact support.",
            ))
        with_tracking = quality == "good" and (release.prompt_version == "support-v8.1" or rng.random() < 0.7)
        tracking = f" Tracking number: {tn} ({carrier})." if with_tracking and tn else ""
        if status == "processing":
            text = (f"Order {oid} ({items}) is being prepared in our warehouse and should ship within 1-2 business "
                    "days. You'll get an email with tracking as soon as it leaves.")
        elif status == "in_transit":
            text = f"Order {oid} ({items}) is on its way with {carrier} and should arrive {eta}.{tracking}"
        elif status == "out_for_delivery":
            text = f"Good news: order {oid} is out for delivery with {carrier} today.{tracking}"
        elif status == "delayed":
            text = (f"Order {oid} is delayed: {carrier} reports a {order.get('carrier_note', 'delay').lower()}. It should now "
                    f"arrive {eta}.{tracking} If it hasn't arrived by then, we'll send a "
                    "replacement or refund it, whichever you prefer.")
        else:
            delivered = relative_day(datetime.fromisoformat(order["delivered_at"]).date(), now.date())
            text = (f"Order {oid} was delivered {delivered}. If you can't find it, check with neighbours or "
                    "your building's reception; if it's still missing after 48 hours, reply here and we'll open a "
                    "claim with the carrier.")
        if quality == "mediocre":
            return "Thank you for your patience. " + text.split(". ")[0] + ". Let me know if you need anything else!"
        return opener + text

    # --- scores ---------------------------------------------------------------------------------

    def scores(self, trace: dict[str, Any], user: User, quality: str, upset: bool) -> None:
        rng = self.rng
        end = datetime.fromisoformat(trace["end_time"])
        failed = trace["status"] == "error"
        slow = (end - datetime.fromisoformat(trace["start_time"])).total_seconds() > 12
        scores = trace["scores"]

        def add(score: dict[str, Any], after: datetime) -> None:
            if after <= REFERENCE_END:  # feedback that would come after the history ends isn't there yet
                scores.append({"score_id": self.score_id(after), **score, "created_at": iso(after)})

        rate = 0.13 + (0.22 if failed else 0.0) + (0.14 if quality == "bad" else 0.0) + (0.1 if slow else 0.0) \
            + (0.05 if upset else 0.0)
        if trace["environment"] == "production" and rng.random() < rate:
            p_up = 0.05 if failed else {"good": 0.9, "mediocre": 0.5, "bad": 0.12}[quality] - (0.3 if slow else 0)
            up = rng.random() < max(p_up, 0.02)
            comment = None
            if rng.random() < (0.18 if up else 0.45):
                comment = rng.choice(self.feedback_comment(up, failed, slow, quality))
            add({"name": "thumbs", "value": 1 if up else 0, "source": "user_feedback", "author": user.id,
                 "comment": comment}, end + timedelta(seconds=lognormal(rng, 25, 0.9)))
        if not failed and rng.random() < 0.25:
            base = {"good": rng.uniform(0.72, 1.0), "mediocre": rng.uniform(0.45, 0.72),
                    "bad": rng.uniform(0.05, 0.4)}[quality]
            add({"name": "helpfulness", "value": round(base, 2), "source": "llm_judge", "author": JUDGE["author"],
                 "comment": self.judge_comment(quality, trace), "metadata": JUDGE["metadata"]},
                end + timedelta(seconds=rng.uniform(20, 240)))
        thumbs_down = any(s["name"] == "thumbs" and s["value"] == 0 for s in scores)
        if not failed and rng.random() < (0.45 if thumbs_down else 0.025):
            reviewer = rng.choice(REVIEWERS)
            when = end + timedelta(hours=rng.uniform(2, 60))
            label, value = {"good": ("correct", 1.0), "mediocre": ("partially_correct", 0.5),
                            "bad": ("incorrect", 0.0)}[quality]
            if rng.random() < 0.1:  # reviewers don't always agree with the latent truth
                label, value = ("partially_correct", 0.5) if label != "partially_correct" else ("correct", 1.0)
            add({"name": "correctness", "label": label, "value": value, "source": "human", "author": reviewer,
                 "comment": rng.choice(self.review_comment(label)) if rng.random() < 0.5 else None}, when)
            if rng.random() < 0.55:
                tone = rng.choices(("friendly", "neutral", "robotic", "curt"),
                                   (0.5, 0.3, 0.15, 0.05) if quality != "mediocre" else (0.2, 0.3, 0.45, 0.05))[0]
                add({"name": "tone", "label": tone, "source": "human", "author": reviewer},
                    when + timedelta(seconds=rng.uniform(5, 60)))
            if label != "correct" and rng.random() < 0.3:
                add({"name": "notes", "source": "human", "author": reviewer, "comment": rng.choice((
                    "Good candidate for the regression dataset.",
                    "Model ignored the tool result and guessed the status.",
                    "Policy in the answer is out of date (help center says 30 days).",
                    "Should have offered a human hand-off.",
                    "Retrieved articles were off-topic; the reranker picked shipping docs for a billing question.",
                    "Answer is fine but far too long for mobile.",
                ))}, when + timedelta(seconds=rng.uniform(60, 300)))

    def score_id(self, at: datetime) -> str:
        return f"{int(at.timestamp() * 1000):012x}{self.rng.getrandbits(80):020x}"

    def feedback_comment(self, up: bool, failed: bool, slow: bool, quality: str) -> tuple[str, ...]:
        if up:
            return ("Quick and helpful, thanks!", "easy", "Got my answer right away", "thank you!!",
                    "Better than waiting on the phone")
        if failed:
            return ("It just said something went wrong", "error again", "Doesn't work. Tried three times.")
        if slow:
            return ("way too slow", "took forever to answer", "Slow, I almost gave up")
        return ("Didn't answer my question", "That's not what the website says", "useless, just give me a human",
                "It told me my order was delivered, it wasn't", "Too long, didn't read", "wrong info")

    def judge_comment(self, quality: str, trace: dict[str, Any]) -> str:
        rng = self.rng
        if quality == "good":
            return rng.choice((
                "Answers the question directly and matches the retrieved policy.",
                "Accurate and grounded in the tool result; concise.",
                "Resolves the request; tone is appropriate.",
            ))
        if quality == "mediocre":
            return rng.choice((
                "Correct but generic; padded with boilerplate.",
                "Partially answers; omits the detail the customer asked for.",
                "Accurate, but does not use the tool result fully (no tracking number).",
            ))
        return rng.choice((
            "Contradicts the retrieved help-center article.",
            "States order details that are not in the tool result.",
            "Does not answer the question; deflects to support.",
        ))

    def review_comment(self, label: str) -> tuple[str, ...]:
        return {
            "correct": ("Matches the policy.", "Fine.", "Good answer, could be shorter."),
            "partially_correct": ("Right policy, missing the tracking number.", "Vague; should link the steps.",
                                  "Mostly right but the customer asked about a specific order."),
            "incorrect": ("Wrong return window.", "Hallucinated delivery status.", "Told the user something we don't do."),
        }[label]


class TraceBuilder:
    """Builds one trace's spans on a clock that moves forward as each step takes its time."""

    def __init__(self, gen: Generator, at: datetime, name: str, model: str, release: Release, environment: str) -> None:
        self.gen, self.rng = gen, gen.rng
        self.start = at
        self.clock = at + timedelta(milliseconds=self.rng.uniform(1, 6))
        self.name, self.model, self.release, self.environment = name, model, release, environment
        self.provider = MODELS[model][0]
        self.root_id = gen.hex_id(16)
        self.spans: list[dict[str, Any]] = []
        self.failed: str | None = None  # the error that ended the trace, if one did
        self.anthropic_cache_warm = self.rng.random() < 0.7

    def tick(self, ms: float) -> tuple[datetime, datetime]:
        start = self.clock
        self.clock = start + timedelta(milliseconds=ms)
        return start, self.clock

    def span(self, kind: str, name: str, ms: float, **fields: Any) -> dict[str, Any]:
        start, end = self.tick(ms)
        span = {"span_id": self.gen.hex_id(16), "parent_id": self.root_id, "kind": kind, "name": name,
                "start_time": iso(start), "end_time": iso(end), "latency_ms": round(ms, 3), "status": "ok",
                **fields}
        self.spans.append(span)
        self.clock += timedelta(milliseconds=self.rng.uniform(0.5, 4))  # the app's own work between steps
        return span

    def tail(self, ms: float, rate: float = 0.015) -> float:
        """Now and then a step is several times slower than usual (GC pauses, cold caches, queues)."""
        return ms * self.rng.uniform(3, 9) if self.rng.random() < rate else ms

    def retrieval(self, query: str, kb_ids: tuple[str, ...]) -> list[dict[str, Any]]:
        rng = self.rng
        relevant = list(kb_ids)[:3]
        others = rng.sample([k for k in KB if k not in relevant], 4 - len(relevant))
        high = sorted((rng.uniform(0.74, 0.93) for _ in relevant), reverse=True)
        low = sorted((rng.uniform(0.38, 0.66) for _ in others), reverse=True)
        if self.release.name == "v1.5.0" and rng.random() < 0.08:
            high, low = low[:len(high)] + high[len(low):], high[:len(low)]  # the new reranker buries the right article
        ranked = sorted(zip(relevant + others, high + low), key=lambda kv: -kv[1])
        docs = [{"id": k, "title": KB[k][0], "text": KB[k][1], "score": round(s, 3)} for k, s in ranked]
        ms = self.tail(lognormal(rng, self.release.retrieval_ms, 0.35), 0.05 if self.release.rerank else 0.015)
        params = {"query": query, "top_k": 4, "index": "help-center-v3"}
        if self.release.rerank:
            params["rerank"] = "bge-reranker-v2"
        self.span("retrieval", "search_help_center", ms, input=params, output=docs)
        return docs

    def messages(self, system: str, history: list[tuple[str, str]], message: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        for said, answered in history[-3:]:
            messages += [{"role": "user", "content": said}, {"role": "assistant", "content": answered}]
        return messages + [{"role": "user", "content": message}]

    def with_tool_result(self, messages: list[dict[str, Any]], call: dict[str, Any], result: Any) -> list[dict[str, Any]]:
        content = json.dumps(result if result is not None else {"error": "order service unavailable"})
        if self.provider == "openai":
            return messages + [
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": call["id"], "type": "function",
                     "function": {"name": call["name"], "arguments": call["arguments"]}}]},
                {"role": "tool", "tool_call_id": call["id"], "content": content},
            ]
        return messages + [
            {"role": "assistant", "content": [{"type": "tool_use", "id": call["id"], "name": call["name"],
                                               "input": call["arguments"]}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": content}]},
        ]

    def llm(self, messages: list[dict[str, Any]], *, reply: str | None = None,
            tool_call: tuple[str, dict[str, Any]] | None = None, stream: bool = False) -> Any:
        """One model call (retried once after a rate limit); returns the reply or tool call, None if it failed."""
        if self.failed:
            return None
        rng = self.rng
        provider = self.provider
        day = days_since_start(self.clock)
        error = self.llm_error(day)
        if error is not None:
            kind, message, ms = error
            self.span("llm", self.llm_name(stream), ms, provider=provider, model=self.model,
                      input=self.llm_input(messages), params=self.llm_params(stream), status="error", error=message,
                      attributes={"stream": True} if stream else None)
            if kind in ("rate_limit", "overloaded") and rng.random() < 0.55:
                self.clock += timedelta(milliseconds=rng.uniform(800, 2500))  # the app's backoff, then one retry
                return self._llm_ok(messages, reply, tool_call, stream)
            self.failed = message
            return None
        return self._llm_ok(messages, reply, tool_call, stream)

    def _llm_ok(self, messages: list[dict[str, Any]], reply: str | None, tool_call: tuple[str, dict[str, Any]] | None,
                stream: bool) -> Any:
        rng = self.rng
        provider, ttft_median, speed = MODELS[self.model]
        prompt = sum(tokens(m["content"] if isinstance(m["content"], str) else json.dumps(m["content"]))
                     if m.get("content") is not None else 12 for m in messages)
        input_tokens = prompt + 4 * len(messages) + TOOL_SCHEMA_TOKENS + (8 if provider == "anthropic" else 3)
        system_tokens = tokens(messages[0]["content"]) + TOOL_SCHEMA_TOKENS
        cached = cache_write = 0
        if provider == "openai" and input_tokens >= 1024 and rng.random() < 0.6:
            cached = 1024 + 128 * rng.randint(0, max(0, (min(input_tokens, system_tokens) - 1024) // 128))
            cached = min(cached, input_tokens - 1)
        elif provider == "anthropic":
            if self.anthropic_cache_warm:
                cached = system_tokens
            else:
                cache_write = system_tokens
                self.anthropic_cache_warm = True
        call_id = None
        if tool_call is not None:
            name, arguments = tool_call
            call_id = f"call_{self.gen.hex_id(24)}" if provider == "openai" else f"toolu_01{self.gen.hex_id(22)}"
            call = {"id": call_id, "name": name,
                    "arguments": json.dumps(arguments) if provider == "openai" else arguments}
            output: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
            if provider == "anthropic" and rng.random() < 0.5:  # Claude often says what it is about to do
                output["content"] = rng.choice(("Let me look up that order for you.", "I'll check that order now.",
                                                "Let me process that refund."))
            output_tokens = 18 + tokens(json.dumps(arguments)) + (tokens(output["content"]) if output["content"] else 0)
            finish = "tool_calls" if provider == "openai" else "tool_use"
        else:
            output = {"role": "assistant", "content": reply}
            output_tokens = tokens(reply or "") + rng.randint(0, 6)
            finish = "stop" if provider == "openai" else "end_turn"
        ttft = lognormal(rng, ttft_median * (1 + input_tokens / 6000), 0.3)
        if CARRIER_INCIDENT[0] <= days_since_start(self.clock) <= CARRIER_INCIDENT[1]:
            ttft *= 1.15  # busier afternoons are a little slower at the provider too
        ms = self.tail(ttft + output_tokens / lognormal(rng, speed, 0.15) * 1000, 0.02)
        response_id = f"chatcmpl-{self.gen.hex_id(24)}" if provider == "openai" else f"msg_01{self.gen.hex_id(22)}"
        attributes: dict[str, Any] = {"response_id": response_id}
        if stream:
            attributes["stream"] = True
            if provider == "openai":
                attributes["stream_chunks"] = output_tokens + 2
        if provider == "anthropic":
            attributes["usage"] = {"input_tokens": input_tokens - cached - cache_write,
                                   "cache_read_input_tokens": cached, "cache_creation_input_tokens": cache_write,
                                   "output_tokens": output_tokens}
        cost = cost_usd(provider, self.model, input_tokens, output_tokens, cached, cache_write)
        self.span("llm", self.llm_name(stream), ms, provider=provider, model=self.model, input=self.llm_input(messages),
                  output=output, params=self.llm_params(stream), finish_reason=finish, input_tokens=input_tokens,
                  output_tokens=output_tokens, cached_tokens=cached, cost_usd=round(cost, 8) if cost is not None else None,
                  pricing_source=PRICING_SOURCE, ttft_ms=round(ttft, 3) if stream else None, attributes=attributes)
        if tool_call is not None:
            return output["tool_calls"][0]
        return reply

    def llm_error(self, day: float) -> tuple[str, str, float] | None:
        rng = self.rng
        anthropic = self.provider == "anthropic"
        burst = anthropic and RATE_LIMIT_BURST[0] <= day <= RATE_LIMIT_BURST[1]
        if rng.random() < (0.3 if burst else 0.014):
            if anthropic:
                return ("rate_limit", ("RateLimitError: Error code: 429 - {'type': 'error', 'error': {'type': "
                        "'rate_limit_error', 'message': 'This request would exceed the rate limit for your "
                        "organization of 400,000 input tokens per minute. Please reduce the prompt length or the "
                        "maximum tokens requested, or try again later.'}}"), rng.uniform(180, 420))
            return ("rate_limit", ("RateLimitError: Error code: 429 - {'error': {'message': 'Rate limit reached for "
                    f"{self.model} in organization org-fernhill on tokens per min (TPM): Limit 2000000, Used 1998211, "
                    f"Requested {rng.randint(1400, 3200)}. Please try again in {rng.randint(40, 900)}ms.', 'type': "
                    "'tokens', 'param': None, 'code': 'rate_limit_exceeded'}}"), rng.uniform(150, 380))
        if anthropic and rng.random() < 0.004:
            return ("overloaded", ("OverloadedError: Error code: 529 - {'type': 'error', 'error': {'type': "
                    "'overloaded_error', 'message': 'Overloaded'}}"), rng.uniform(900, 4000))
        if rng.random() < 0.005:
            return ("timeout", "APITimeoutError: Request timed out.", rng.uniform(30000, 30400))
        return None

    def llm_name(self, stream: bool) -> str:
        if self.provider == "openai":
            return "openai.chat.completions.create"
        return "anthropic.messages.stream" if stream else "anthropic.messages.create"

    def llm_input(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return messages  # both wrappers record the system prompt as the first message

    def llm_params(self, stream: bool) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "max_tokens": 600, "temperature": 0.3}
        if self.provider == "openai":
            params["tools"] = TOOLS_OPENAI
            if stream:
                params.update(stream=True, stream_options={"include_usage": True})
        else:
            params["tools"] = TOOLS_ANTHROPIC
        return params

    def tool(self, name: str, arguments: dict[str, Any], result: dict[str, Any], *, kind_ms: float,
             error_rate: float = 0.02) -> dict[str, Any] | None:
        """A tool call; returns its result, or None when it failed (``failed`` is set if that ends the trace)."""
        if self.failed:
            return None
        rng = self.rng
        ms = self.tail(lognormal(rng, kind_ms, 0.4), 0.02)
        error = None
        if name == "lookup_order" and rng.random() < self.release.tool_timeout_rate:
            ms = 8000 + rng.uniform(0, 40)
            error = "TimeoutError: order service did not answer within 8.0 s"
        elif rng.random() < error_rate:
            if name == "lookup_order":
                error = f"OrderServiceError: GET /v2/orders/{arguments['order_id']} returned 503 Service Unavailable"
            else:
                error = rng.choice(("PaymentProviderError: refund rejected (charge_already_refunded)",
                                    "PaymentProviderError: 502 Bad Gateway from payments provider"))
        if error is None:
            self.span("tool", name, ms, input=arguments, output=result)
            return result
        self.span("tool", name, ms, input=arguments, status="error", error=error)
        timeout = error.startswith("TimeoutError")
        if (timeout and self.release.timeout_kills_trace) or rng.random() < 0.5:
            self.failed = error
        return None

    def finish(self, *, user: User, session_id: str, release_label: str, turn: int, trace_input: Any,
               reply: str | None, intent: str, tags: list[str], quality: str) -> dict[str, Any]:
        end = self.clock + timedelta(milliseconds=self.rng.uniform(2, 15))
        status = "error" if self.failed else "ok"
        output = {"reply": reply} if reply is not None and not self.failed else None
        root = {"span_id": self.root_id, "parent_id": None, "kind": "span", "name": self.name,
                "start_time": iso(self.start), "end_time": iso(end),
                "latency_ms": round((end - self.start).total_seconds() * 1000, 3), "input": trace_input,
                "output": output, "status": status, "error": self.failed}
        metadata = {"channel": user.channel, "locale": user.locale, "plan": user.plan, "intent": intent, "turn": turn,
                    "prompt_version": self.release.prompt_version}
        trace_id = f"{int(self.start.timestamp() * 1000):012x}{self.rng.getrandbits(80):020x}"
        return {
            "trace_id": trace_id, "name": self.name, "start_time": iso(self.start), "end_time": iso(end),
            "session_id": session_id, "user_id": user.id, "tags": tags, "metadata": metadata,
            "release": release_label, "environment": self.environment, "input": trace_input, "output": output,
            "status": status, "error": self.failed, "spans": [root, *self.spans], "scores": [],
        }


# --- writing and summarising ------------------------------------------------------------------------


def write(traces: list[dict[str, Any]], path: Path = OUT) -> int:
    """Write the traces as gzipped JSON lines, byte-for-byte reproducible (no gzip timestamp)."""
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as stream:
        for trace in traces:
            stream.write(json.dumps(trace, ensure_ascii=False, separators=(",", ":")).encode())
            stream.write(b"\n")
    path.write_bytes(raw.getvalue())
    return len(raw.getvalue())


def summary(traces: list[dict[str, Any]]) -> str:
    spans = [s for t in traces for s in t["spans"]]
    llm = [s for s in spans if s["kind"] == "llm"]
    scores = [s for t in traces for s in t["scores"]]
    lines = [(f"{len(traces)} traces, {len(spans)} spans, {len(scores)} scores, "
             f"{len({t['user_id'] for t in traces})} users, {len({t['session_id'] for t in traces})} sessions"),
             f"from {traces[0]['start_time']} to {max(t['end_time'] for t in traces)}"]

    def table(title: str, counter: Counter) -> None:
        lines.append(f"{title}: " + ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1])))

    table("names", Counter(t["name"] for t in traces))
    table("releases", Counter(f"{t['release']} ({t['environment']})" for t in traces))
    table("status", Counter(t["status"] for t in traces))
    table("llm spans by model", Counter(s["model"] for s in llm))
    table("span kinds", Counter(s["kind"] for s in spans))
    table("scores", Counter(f"{s['name']}/{s['source']}" for s in scores))
    table("errors", Counter(t["error"].split(":")[0] for t in traces if t["error"]))
    thumbs = [s for s in scores if s["name"] == "thumbs"]
    lines.append(f"thumbs on {len(thumbs) / len(traces):.1%} of traces, {sum(s['value'] for s in thumbs) / len(thumbs):.0%} up")
    for release in ("v1.4.0", "v1.5.0", "v1.5.1"):
        rows = [t for t in traces if t["release"] == release]
        durations = sorted((datetime.fromisoformat(t["end_time"]) - datetime.fromisoformat(t["start_time"]))
                           .total_seconds() for t in rows)
        errors = sum(t["status"] == "error" for t in rows) / len(rows)
        cost = sum(s.get("cost_usd") or 0 for t in rows for s in t["spans"]) / len(rows)
        lines.append(f"{release}: {len(rows)} traces, p50 {durations[len(rows) // 2]:.1f}s, "
                     f"p95 {durations[int(len(rows) * 0.95)]:.1f}s, p99 {durations[int(len(rows) * 0.99)]:.1f}s, "
                     f"errors {errors:.1%}, ${cost:.4f}/trace")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stats", action="store_true", help="print a summary of what was generated")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output file (default {OUT.name})")
    args = parser.parse_args(argv)
    traces = Generator().run()
    size = write(traces, args.out)
    print(f"Wrote {len(traces)} traces to {args.out} ({size / 1e6:.2f} MB).")
    if args.stats:
        print(summary(traces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
