"""Page numbers for long lists (queues and sets hold millions of jobs; a page shows 25).

Example::

    >>> p = Pager.from_query("3", total=120)
    >>> (p.offset, p.pages, p.has_next)
    (50, 5, True)
    >>> p.window()
    [1, 2, 3, 4, 5]
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PER_PAGE", "Pager"]

PER_PAGE = 25


@dataclass(frozen=True)
class Pager:
    """Where a list page is: ``page`` (1-based) of ``total`` items, ``per_page`` per page."""

    page: int
    total: int
    per_page: int = PER_PAGE

    @classmethod
    def from_query(cls, raw: str | None, total: int = 0, per_page: int = PER_PAGE) -> Pager:
        """Build from the ``page`` query parameter; junk or out-of-range values land on page 1."""
        try:
            page = int(raw or "1")
        except ValueError:
            page = 1
        return cls(page=max(page, 1), total=total, per_page=per_page)

    def with_total(self, total: int) -> Pager:
        """The same page once the total is known, pulled back onto the last page if beyond it."""
        last = max((total + self.per_page - 1) // self.per_page, 1)
        return Pager(page=min(self.page, last), total=total, per_page=self.per_page)

    @property
    def offset(self) -> int:
        """Index of the first item on this page."""
        return (self.page - 1) * self.per_page

    @property
    def pages(self) -> int:
        """How many pages there are (at least one)."""
        return max((self.total + self.per_page - 1) // self.per_page, 1)

    @property
    def has_prev(self) -> bool:
        """Whether a previous page exists."""
        return self.page > 1

    @property
    def has_next(self) -> bool:
        """Whether a next page exists."""
        return self.page < self.pages

    @property
    def first_item(self) -> int:
        """1-based number of the first item shown (0 when the list is empty)."""
        return 0 if self.total == 0 else self.offset + 1

    @property
    def last_item(self) -> int:
        """1-based number of the last item shown."""
        return min(self.offset + self.per_page, self.total)

    def window(self, radius: int = 2) -> list[int]:
        """Page numbers to link around the current page."""
        lo = max(self.page - radius, 1)
        hi = min(self.page + radius, self.pages)
        return list(range(lo, hi + 1))
