# R7 recipients: the Ministry of Agriculture and Forestry and the Food
# Authority read, and only read, companies in agriculture, forestry and
# fishing (TOL 01-03) and food and beverages (10-11), with their contacts and
# services: public company data, identification, processing data and service
# records. Never home or additional data, confidential or internal data,
# history, requests or audit. Other companies are invisible to them. Only a
# reading role reads: a recipient's auditor, or a token with no role, reads
# nothing. Recipients handle no data subject requests, so R5's and R11's DPO
# exceptions and R9 are never theirs.

grants(p: Principal, _r: Record, class: String, "R7-recipients") if
    is_recipient(p) and staff(p) and p.in_eu_eea and
    class in ["company.public", "contact.identification", "contact.processing", "service.record"];

hidden(p: Principal, r: Record, "R7-recipients") if is_recipient(p) and not r.in_sector;
