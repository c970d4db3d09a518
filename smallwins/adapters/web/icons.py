"""Badge images drawn as SVG, so every achievement has an icon without an artist.

A medal in the tier's colour with the achievement's initials; white text on colours dark
enough for WCAG AA contrast (>= 4.5:1). Operators may point ``icons`` at their own images.
"""

from __future__ import annotations

from html import escape

#: Tier -> fill; each is dark enough for white initials (contrast >= 4.5:1).
TIER_COLOURS = {
    "bronze": "#8a4b1e",
    "silver": "#4b5563",
    "gold": "#8a6100",
    "platinum": "#35507a",
    "limited": "#7a1f5c",
}
DEFAULT_COLOUR = "#1f5f3f"


def initials(name: str) -> str:
    words = [w for w in name.replace("-", " ").split() if w[:1].isalnum()]
    return ("".join(w[0] for w in words[:2]) or "?").upper()


def badge_svg(name: str, tier: str | None) -> str:
    colour = TIER_COLOURS.get((tier or "").lower(), DEFAULT_COLOUR)
    label = escape(f"{name} badge" + (f" ({tier})" if tier else ""))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64" role="img" '
        f'aria-label="{label}"><title>{label}</title>'
        f'<circle cx="32" cy="32" r="30" fill="{colour}"/>'
        '<circle cx="32" cy="32" r="24" fill="none" stroke="#ffffff" stroke-opacity=".55" stroke-width="2"/>'
        '<text x="32" y="39" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" '
        f'font-size="20" font-weight="bold" fill="#ffffff">{escape(initials(name))}</text></svg>'
    )
