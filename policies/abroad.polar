# R8 abroad: outside the EU/EEA only Business Finland Oy's own staff in its
# network abroad are let in, and they read only what producing business
# services needs. Anyone else abroad is refused for the whole request (403).

refused(p: Principal, "R8-abroad") if not p.in_eu_eea and p.org != "BFOY";

grants(p: Principal, _r: Record, class: String, "R8-abroad") if
    not p.in_eu_eea and p.org = "BFOY" and staff(p) and
    class in ["company.public", "contact.identification", "contact.processing", "service.record"];
