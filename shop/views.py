"""Storefront pages. Thin: parse the request, call selectors/services, render."""
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from . import selectors


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/home.html", {"products": selectors.product_list()[:24]})
