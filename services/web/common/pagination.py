"""The page block of the API's paginated lists (the sale list, a buyer's orders)."""

from ninja import Schema


class PageOut(Schema):
    number: int
    num_pages: int
    count: int
    has_previous: bool
    has_next: bool
    previous_page_number: int | None
    next_page_number: int | None


def page_payload(page) -> dict:
    return {
        "number": page.number,
        "num_pages": page.paginator.num_pages,
        "count": page.paginator.count,
        "has_previous": page.has_previous(),
        "has_next": page.has_next(),
        "previous_page_number": page.previous_page_number() if page.has_previous() else None,
        "next_page_number": page.next_page_number() if page.has_next() else None,
    }
